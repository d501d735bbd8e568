"""Reader for ``prep shard --format webdataset``: an iterable over tar shards.

Every item exactly once per epoch, whatever the shard, rank and worker counts. The epoch's
item stream is the shards in order (an order shuffled from ``seed`` and the epoch with
``shuffle``, the same on every rank); each rank takes a contiguous run of it, and each
DataLoader worker a contiguous run of its rank's. A worker reads only the shards its run
touches, skips (undecoded) the items of a shared shard before its run and stops reading at
its end. With ``shuffle``, each worker also shuffles a buffer of ``buffer_size`` items.

Every rank yields ``len(dataset)`` = ceil(num_items / world_size) items, so no rank waits on
another at the end of an epoch. When the items do not divide among the ranks, the last
rank's run wraps round to the first items of the stream: the fewest repeats that give equal
counts, and a warning says how many.

Each shard is held to ``format.json``: its item count (``shard_items``), each item's
members, sample rate, sample format and length; a shard that is short, long or damaged
raises a :class:`~loaders.sample.FormatError` naming it.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from loaders.epoch import SharedEpoch
from loaders.formats import FormatReader
from loaders.mel_storage import from_storage
from loaders.sample import (
    FormatError,
    audio_tensor,
    check_dtype,
    check_with_mel,
    make_sample,
    read_pcm16,
    stored_samples,
)
from manifests import is_url


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _open_shards(urls: Iterator[dict]) -> Iterator[dict]:
    """webdataset's ``url_opener`` stage, with fsspec for object-storage URLs (``s3://``)."""
    for sample in urls:
        url = sample["url"]
        if is_url(url):
            import fsspec  # only for object storage

            opened = fsspec.open(url, "rb")
        else:
            opened = open(url, "rb")  # noqa: SIM115 - closed by the with below
        with opened as stream:
            yield {**sample, "stream": stream}


def _tar_samples(urls: Iterator[dict]) -> Iterator[dict]:
    """Shard URLs to samples: ``wds.tarfile_to_samples`` with :func:`_open_shards`."""
    return group_by_keys(tar_file_expander(_open_shards(urls)))


def shard_counts(fmt: dict, name: str | Path) -> list[int]:
    """Items per shard, from format.json's ``shard_items`` (or, in a format.json written
    before that field, ``samples_per_shard`` in every shard but the last)."""
    shards = fmt.get("shards")
    counts = fmt.get("shard_items")
    if counts is None and isinstance(shards, list):
        per, last = fmt.get("samples_per_shard"), fmt.get("last_shard_samples")
        counts = [per] * (len(shards) - 1) + [last] if shards else []
    if not (
        isinstance(shards, list)
        and isinstance(counts, list)
        and len(counts) == len(shards)
        and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
    ):
        raise FormatError(f"{name}: 'shards' and their item counts do not match")
    if sum(counts) != fmt["num_items"]:
        raise FormatError(
            f"{name}: its shards hold {sum(counts)} items, num_items says {fmt['num_items']}"
        )
    return counts


def _buffer_shuffle(items: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Items in a random order drawn through a buffer of ``size`` (all of them, once)."""
    buffer: list[dict] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(len(buffer)))
        buffer[j], item = item, buffer[j]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class WebDatasetShards(FormatReader, SharedEpoch, IterableDataset):
    format_name = "webdataset"
    reads_object_storage = True
    shuffles_itself = True

    def __init__(
        self,
        folder: str | Path,
        shuffle: bool = False,
        seed: int = 0,
        buffer_size: int = 1000,
        rank: int | None = None,
        world_size: int | None = None,
        dtype: str = "float32",
        with_mel: bool = False,
    ) -> None:
        """``with_mel``: also read each item's stored mel; off by default, as reading it
        costs about a third of the audio-only speed."""
        self.folder = folder.rstrip("/") if is_url(folder) else Path(folder)
        self.format, _ = self.read_folder(self.folder)
        check_with_mel(self.folder, self.format, with_mel)
        self.counts = shard_counts(self.format, f"{self.folder}/format.json")
        self.urls = [f"{self.folder}/{name}" for name in self.format["shards"]]
        self.sample_rate = int(self.format["sample_rate"])
        self.codec = self.format.get("codec", "wav")
        self.with_mel = with_mel
        if self.with_mel:
            self.mel_dtype = np.dtype(self.format.get("mel_dtype", "float32"))
            self.n_mels = int(self.format["mel"]["n_mels"])
        self.shuffle, self.seed, self.buffer_size = shuffle, seed, buffer_size
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
        self.dtype = check_dtype(dtype)
        self.epoch = 0
        total = int(self.format["num_items"])
        repeats = len(self) * self.world_size - total
        if repeats:
            warnings.warn(
                f"{self.folder}: {total} items do not split evenly over {self.world_size} "
                f"ranks; {repeats} are read twice per epoch so every rank gets {len(self)}",
                stacklevel=2,
            )

    def __len__(self) -> int:
        """Items this rank yields per epoch: the same on every rank."""
        return math.ceil(int(self.format["num_items"]) / self.world_size)

    def items_per_worker(self, workers: int) -> list[int]:
        """How many items each of ``workers`` DataLoader workers yields per epoch: the
        batches they make add up to more than ``len / batch_size`` when these are uneven."""
        per_rank = len(self)
        return [per_rank // workers + (1 if w < per_rank % workers else 0) for w in range(workers)]

    def shard_order(self) -> list[int]:
        """The epoch's shard order: the item stream every rank takes its run of."""
        if not self.shuffle:
            return list(range(len(self.urls)))
        rng = np.random.default_rng((self.seed, self.epoch))
        return [int(s) for s in rng.permutation(len(self.urls))]

    def runs(self, start: int, count: int) -> list[tuple[int, int, int]]:
        """``(shard, first, stop)``: the shards' items at stream positions ``start`` to
        ``start + count``, wrapping round at the end of the stream, in stream order."""
        total = sum(self.counts)
        spans, at = [], 0
        for shard in self.shard_order():
            spans.append((shard, at, self.counts[shard]))
            at += self.counts[shard]
        runs: list[tuple[int, int, int]] = []
        pos, left = (start % total, count) if total else (0, 0)
        while left:
            for shard, offset, n in spans:
                lo, hi = max(pos, offset), min(pos + left, offset + n)
                if lo < hi:
                    runs.append((shard, lo - offset, hi - offset))
            left -= min(left, total - pos)
            pos = 0
        return runs

    def worker_runs(self, worker: int, workers: int) -> list[tuple[int, int, int]]:
        """This rank's ``worker``'s share of the epoch, as :meth:`runs`."""
        counts = self.items_per_worker(workers)
        start = self.rank * len(self) + sum(counts[:worker])
        return self.runs(start, counts[worker])

    def _read_run(self, shard: int, first: int, stop: int) -> Iterator[dict]:
        """Items ``first`` to ``stop`` of one shard, undecoded; the shard is read to its end
        (and its count checked) only when the run goes that far."""
        url, expected = self.urls[shard], self.counts[shard]
        seen = 0
        try:
            for raw in _tar_samples([{"url": url}]):
                if seen == expected:
                    raise FormatError(f"{url}: more than the {expected} items format.json lists")
                if seen >= first:
                    missing = {"json", self.codec} - set(raw)
                    if missing:
                        raise FormatError(
                            f"{url}: item {raw['__key__']!r} has no {sorted(missing)[0]!r} "
                            "member (a truncated or damaged shard)"
                        )
                    yield raw
                seen += 1
                if seen == stop and stop < expected:
                    return
        except FormatError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise FormatError(f"{url}: not a readable tar shard ({exc.args[0]})") from None
        if seen != expected:
            raise FormatError(f"{url}: {seen} items, format.json says {expected} (truncated?)")

    def _decode(self, raw: dict) -> dict:
        name = f"{raw['__url__']}:{raw['__key__']}"
        try:
            meta = json.loads(raw["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{name}.json: not valid JSON ({exc})") from None
        frames = stored_samples(self.format, meta)
        member = f"{name}.{self.codec}"
        audio = read_pcm16(io.BytesIO(raw[self.codec]), member, self.sample_rate, frames)
        tensors = {"audio": audio_tensor(audio, self.dtype)}
        if self.with_mel:
            if "mel.npy" not in raw:
                raise FormatError(f"{name}: no mel.npy member, although the set has mel")
            stored = np.load(io.BytesIO(raw["mel.npy"]))
            if stored.dtype != self.mel_dtype or stored.ndim != 2 or stored.shape[0] != self.n_mels:
                raise FormatError(
                    f"{name}.mel.npy: {stored.dtype} {stored.shape}, format.json promises "
                    f"{self.mel_dtype} ({self.n_mels}, frames)"
                )
            tensors["mel"] = torch.from_numpy(from_storage(stored, meta))
        return make_sample(meta, self.sample_rate, **tensors)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        raws = (
            raw
            for shard, first, stop in self.worker_runs(worker, workers)
            for raw in self._read_run(shard, first, stop)
        )
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch, self.rank, worker))
            raws = _buffer_shuffle(raws, self.buffer_size, rng)
        for raw in raws:
            yield self._decode(raw)
