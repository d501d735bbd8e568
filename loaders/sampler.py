"""Batches by total seconds instead of a fixed count, with items of similar length.

Long clips caused out-of-memory at a fixed batch size in the XLSR fine-tuning log; here a
batch's padded cost (items x longest item) stays within ``max_batch_seconds``, and sorting
within large random pools keeps padding small. Seeded per epoch; every DDP rank gets the
same number of batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def padded_seconds(batch: Sequence[int], durations: Sequence[float]) -> float:
    return len(batch) * max(durations[i] for i in batch)


def padding_waste(batches: Sequence[Sequence[int]], durations: Sequence[float]) -> float:
    """Fraction of the padded batches that is padding."""
    real = sum(durations[i] for b in batches for i in b)
    padded = sum(padded_seconds(b, durations) for b in batches)
    return 1.0 - real / padded if padded else 0.0


class DurationBucketSampler(Sampler[list[int]]):
    """Yields lists of indices; use as a DataLoader's ``batch_sampler``.

    An item longer than the budget gets a batch of its own (it cannot be split).
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_batch_seconds: float,
        seed: int = 0,
        shuffle: bool = True,
        pool_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_batch_seconds <= 0:
            raise ValueError("max_batch_seconds must be positive")
        self.durations = [float(d) for d in durations]
        self.max_batch_seconds = max_batch_seconds
        self.seed, self.shuffle, self.pool_batches = seed, shuffle, pool_batches
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        too_long = sum(d > max_batch_seconds for d in self.durations)
        if too_long:
            log.warning(
                "%d items are longer than max_batch_seconds; each is a batch alone", too_long
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        n = len(self.durations)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        mean = float(np.mean(self.durations)) if n else 1.0
        pool = max(1, int(self.pool_batches * self.max_batch_seconds / max(mean, 1e-9)))
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = sorted(order[start : start + pool], key=lambda i: self.durations[i])
            current: list[int] = []
            for i in chunk:
                longest = max([self.durations[j] for j in current] + [self.durations[i]])
                if current and (len(current) + 1) * longest > self.max_batch_seconds:
                    batches.append(current)
                    current = []
                current.append(int(i))
            if current:
                batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _rank_batches(self) -> list[list[int]]:
        batches = self._all_batches()
        if self.num_replicas > 1 and batches:
            extra = -len(batches) % self.num_replicas  # repeat a few so every rank gets as many
            batches = batches + batches[:extra]
        return batches[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())
