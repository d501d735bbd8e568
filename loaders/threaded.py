"""A thread-pool loader with a bounded prefetch queue, for when worker processes cost
more than they bring (fast formats, few cores). soundfile, soxr and h5py release the GIL
while they work, so threads overlap I/O and decoding.

Bounded: at most ``prefetch`` batches are loaded or loading at once, so memory cannot grow
when the consumer is slow. Batches come out in order. Stopping early (``break``) cancels
what is queued and joins the threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from loaders.collate import pad_collate
from loaders.formats import as_reader


class ThreadedLoader:
    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        num_threads: int = 4,
        prefetch: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        batch_sampler: Iterable[Sequence[int]] | None = None,
        collate_fn: Callable[[list[dict]], dict] = pad_collate,
    ) -> None:
        if prefetch < 1 or num_threads < 1:
            raise ValueError("prefetch and num_threads must be at least 1")
        self.dataset = dataset
        self.batch_size, self.num_threads, self.prefetch = batch_size, num_threads, prefetch
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.batch_sampler, self.collate_fn = batch_sampler, collate_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def batches(self) -> list[list[int]]:
        if self.batch_sampler is not None:
            return [list(b) for b in self.batch_sampler]
        n = len(self.dataset)
        order = (
            np.random.default_rng((self.seed, self.epoch)).permutation(n)
            if self.shuffle
            else range(n)
        )
        order = [int(i) for i in order]
        stop = n - n % self.batch_size if self.drop_last else n
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __len__(self) -> int:
        return len(self.batches())

    def _load(self, indices: list[int]) -> dict:
        reader = as_reader(self.dataset)
        if reader.reads_batches and self.collate_fn is pad_collate:
            return reader.read_batch(indices)  # one read for the whole batch
        return self.collate_fn(reader.__getitems__(indices))

    def __iter__(self) -> Iterator[dict]:
        pending = iter(self.batches())
        queue: deque[Future] = deque()
        pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="audioprep-loader")
        try:
            for indices in pending:
                queue.append(pool.submit(self._load, indices))
                if len(queue) >= self.prefetch:
                    break
            while queue:
                batch = queue.popleft().result()
                next_indices = next(pending, None)
                if next_indices is not None:
                    queue.append(pool.submit(self._load, next_indices))
                yield batch
        finally:
            for future in queue:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
