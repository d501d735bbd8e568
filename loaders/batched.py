"""Batch-level reads: the dataset returns a whole batch from one read, not B samples.

A memmap or HDF5 batch read as one block and handed over as one tensor avoids splitting
it into B sample dicts and stacking them again, and crosses the worker boundary once.
:func:`batch_loader` builds such a DataLoader (a ``BatchSampler`` as sampler, no
automatic batching) for readers that read whole batches (``reads_batches``, see
:class:`~loaders.formats.FormatReader`), and an ordinary one with :func:`pad_collate` for
the rest, so the training loop is the same either way.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from loaders.collate import pad_collate, padding_mask
from loaders.formats import as_reader
from loaders.sample import audio_tensor
from loaders.shared_batches import SharedBatchLoader


def batch_from_rows(
    block: np.ndarray, entries: list[dict], sample_rate: int, dtype: str, mask: bool = True
) -> dict:
    """A pad_collate-shaped batch from int16 rows ``[B, T]`` and their manifest entries
    (without ``attention_mask`` when ``mask`` is false: :class:`BatchLoader` adds it)."""
    audio = audio_tensor(block, dtype)
    lengths = [int(e["num_samples"]) for e in entries]
    batch: dict = {
        "key": [e["key"] for e in entries],
        "sample_rate": sample_rate,
        "lengths": torch.tensor(lengths, dtype=torch.long),
        "audio": audio,
    }
    if mask:
        batch["attention_mask"] = padding_mask(lengths, audio.shape[-1])
    for name in ("text", "label"):
        if name in entries[0]:
            batch[name] = [e.get(name) for e in entries]
    return batch


class _BatchReads(Dataset):
    """Index i is a list of indices; the item is the batch ``dataset.read_batch`` makes."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> dict:
        return self.dataset.read_batch(indices, mask=False)


def _as_is(batch: dict) -> dict:
    """The collate step for ready batches: DataLoader's default would walk every field."""
    return batch


class BatchLoader:
    """A DataLoader over whole-batch reads that adds ``attention_mask`` in this process.

    The mask follows from ``lengths``; building it here rather than in a worker keeps
    half as many bytes again off the worker-to-trainer channel.
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if "audio" in batch and "attention_mask" not in batch:
                batch["attention_mask"] = padding_mask(
                    batch["lengths"].tolist(), batch["audio"].shape[-1]
                )
            yield batch


def _shuffled(dataset: IterableDataset, seed: int) -> IterableDataset:
    """A copy of an iterable dataset that shuffles itself, now with ``seed`` (its epoch,
    kept in shared memory, stays the original's): a sampler cannot order an iterable."""
    if not as_reader(dataset).shuffles_itself:
        raise ValueError(
            f"shuffle=True: a {type(dataset).__name__} cannot be shuffled by the loader; "
            "shuffle it where it is made"
        )
    shuffled = copy.copy(dataset)
    shuffled.shuffle, shuffled.seed = True, seed
    return shuffled


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    shared_slots: bool = False,
    batch_sampler: Sampler[list[int]] | None = None,
    **dataloader_options,
) -> DataLoader | BatchLoader | SharedBatchLoader:
    """A DataLoader yielding pad_collate-shaped batches, read whole where the dataset can.

    ``shared_slots=True`` (with ``num_workers >= 1``): workers write batches
    into a ring of reused shared-memory slots and the batches are views of it, valid until
    two more batches are taken (see :mod:`loaders.shared_batches`). It is what keeps worker
    processes from being slower than none on the fast formats.

    ``shuffle=True`` on an iterable dataset that shuffles itself (``WebDatasetShards``)
    iterates a copy with its shuffle on and ``seed``; on one that cannot, it is refused.

    ``batch_sampler`` (map-style only): the lists of indices to read, in place of
    ``shuffle``, ``seed`` and ``drop_last`` (one rank's share of each epoch, say).
    """
    shared = shared_slots and dataloader_options.get("num_workers", 0) > 0
    if isinstance(dataset, IterableDataset):
        if batch_sampler is not None:
            raise ValueError("batch_sampler: an iterable dataset orders its own items")
        if shuffle:
            dataset = _shuffled(dataset, seed)
        if shared:
            return SharedBatchLoader(
                dataset, batch_size=batch_size, drop_last=drop_last, **dataloader_options
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            collate_fn=pad_collate,
            **dataloader_options,
        )
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(order, batch_size, drop_last) if batch_sampler is None else batch_sampler
    if shared:
        return SharedBatchLoader(dataset, batches, **dataloader_options)
    if as_reader(dataset).reads_batches:
        reads = DataLoader(
            _BatchReads(dataset), batch_size=None, sampler=batches, **dataloader_options
        )
        return BatchLoader(reads)
    if batch_sampler is not None:
        return DataLoader(
            dataset, batch_sampler=batches, collate_fn=pad_collate, **dataloader_options
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order,
        drop_last=drop_last,
        collate_fn=pad_collate,
        **dataloader_options,
    )
