"""Reader for ``prep shard --format webdataset``: an iterable over tar shards.

Built on the webdataset library. Shards are split by rank (DDP) and then by DataLoader
worker; with ``shuffle``, shard order and a sample buffer are shuffled from ``seed`` and
the epoch. Every rank yields exactly ``len(dataset)`` items (``num_items // world_size``),
cycling its shards if it runs short, so no rank waits on another at the end of an epoch.
With a shard count divisible by ranks x workers, every item is seen exactly once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from loaders.epoch import SharedEpoch
from loaders.mel_storage import from_storage
from loaders.sample import audio_tensor, check_dtype, make_sample, read_folder
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


class WebDatasetShards(SharedEpoch, IterableDataset):
    def __init__(
        self,
        folder: str | Path,
        shuffle: bool = False,
        seed: int = 0,
        buffer_size: int = 1000,
        rank: int | None = None,
        world_size: int | None = None,
        dtype: str = "float32",
        with_mel: bool = True,
    ) -> None:
        self.folder = folder.rstrip("/") if is_url(folder) else Path(folder)
        self.with_mel = with_mel
        self.format, _ = read_folder(self.folder)
        self.urls = [f"{self.folder}/{name}" for name in self.format["shards"]]
        self.sample_rate = int(self.format["sample_rate"])
        self.shuffle, self.seed, self.buffer_size = shuffle, seed, buffer_size
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.dtype = check_dtype(dtype)
        self.epoch = 0

    def __len__(self) -> int:
        """Items this rank yields per epoch: the same on every rank."""
        return int(self.format["num_items"]) // self.world_size

    def _decode(self, raw: dict) -> dict:
        codec = self.format.get("codec", "wav")
        meta = json.loads(raw["json"])
        samples, _ = sf.read(io.BytesIO(raw[codec]), dtype="int16")
        tensors = {"audio": audio_tensor(samples, self.dtype)}
        if self.with_mel and "mel.npy" in raw:
            tensors["mel"] = torch.from_numpy(
                from_storage(np.load(io.BytesIO(raw["mel.npy"])), meta)
            )
        return make_sample(meta, self.sample_rate, **tensors)

    def items_per_worker(self, workers: int) -> list[int]:
        """How many items each of ``workers`` DataLoader workers yields per epoch: the
        batches they make add up to more than ``len / batch_size`` when these are uneven."""
        per_rank = len(self)
        return [per_rank // workers + (1 if w < per_rank % workers else 0) for w in range(workers)]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rank_urls = self.urls[self.rank :: self.world_size]
        if self.shuffle:
            rank_urls = list(
                np.random.default_rng((self.seed, self.epoch, self.rank)).permutation(rank_urls)
            )
        worker_urls = rank_urls[worker::workers] or rank_urls  # fewer shards than workers: share
        stages = [wds.SimpleShardList(worker_urls), _tar_samples]
        if self.shuffle:
            seed = np.random.SeedSequence((self.seed, self.epoch, self.rank, worker))
            stages.append(wds.shuffle(self.buffer_size, seed=int(seed.generate_state(1)[0])))
        quota = self.items_per_worker(workers)[worker]
        produced = 0
        while produced < quota:
            before = produced
            for raw in wds.DataPipeline(*stages):
                yield self._decode(raw)
                produced += 1
                if produced == quota:
                    return
            if produced == before:
                return  # no data at all for this worker
