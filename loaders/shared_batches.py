"""Batches handed from DataLoader workers through a ring of reused shared-memory slots.

PyTorch hands every batch a worker makes to the trainer in a fresh shared-memory segment:
the worker creates and fills it, the trainer maps it, both fault its pages in, and it is
unmapped again. For a 5 MB batch that costs several times more than reading it from a
memmap or HDF5 file in page cache, which is why worker processes made the fast formats
slower than no workers at all. Here the ring is allocated once, before the workers
start; a worker writes its batch's tensors into the slot its batch number names, and only
the slot number, offsets and small fields cross the pipe. The trainer gets views.

The catch, and why this is an option: a view stays valid until its slot comes round
again. The DataLoader sends one new batch to the workers for each batch it yields (with
``in_order``, its default), so with ``prefetch_factor * num_workers + keep`` slots a batch
stays intact until ``keep`` more batches have been taken: use it, move it to the device
or copy it before then.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from loaders.collate import pad_collate, padding_mask
from loaders.formats import as_reader

_ALIGN = 64


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def _tensor_bytes(batch: dict) -> int:
    """Slot bytes a batch needs: every tensor goes in, however small, since a tensor
    pickled by a worker costs a shared-memory segment of its own."""
    return sum(
        _aligned(v.numel() * v.element_size())
        for v in batch.values()
        if isinstance(v, torch.Tensor)
    )


def _slot_view(
    buffer: torch.Tensor, offset: int, dtype: torch.dtype, shape: tuple[int, ...]
) -> torch.Tensor:
    """The tensor of ``dtype`` and ``shape`` stored at byte ``offset`` of a slot."""
    nbytes = torch.Size(shape).numel() * dtype.itemsize
    return buffer[offset : offset + nbytes].view(dtype).view(shape)


def _slot_bytes_for(batch: dict) -> int:
    """A batch's tensors, plus a full attention mask (made in the slot when rows are padded)."""
    audio = batch.get("audio")
    mask = _aligned(audio.shape[0] * audio.shape[-1]) if audio is not None else 0
    return _tensor_bytes({k: v for k, v in batch.items() if k != "attention_mask"}) + mask


class SharedBatchRing:
    """``slots`` shared-memory buffers of ``slot_bytes`` each; tensors placed by offset."""

    def __init__(self, slots: int, slot_bytes: int) -> None:
        slot_bytes = _aligned(slot_bytes)
        self.buffers = torch.empty(slots, slot_bytes, dtype=torch.uint8).share_memory_()

    @property
    def slots(self) -> int:
        return self.buffers.shape[0]

    def writer(self, seq: int, part: int = 0, parts: int = 1) -> SlotWriter:
        """Worker side: where batch number ``seq`` goes; with ``parts``, in the ring's
        ``part``-th share (one share per worker, for workers that number their own)."""
        per_part = self.slots // parts
        slot = part * per_part + seq % per_part
        return SlotWriter(self.buffers[slot], slot)

    def take(self, message: dict) -> dict:
        """Trainer side: the batch, its large tensors as views of the slot."""
        if "batch" in message:
            return message["batch"]
        buffer = self.buffers[message["slot"]]
        batch = dict(message["small"])
        for name, placed in message["placed"].items():
            batch[name] = _slot_view(buffer, *placed)
        return batch


class SlotWriter:
    """One slot being filled: tensors are allocated in it (a dataset reads straight into
    them) or copied in when the batch is finished."""

    def __init__(self, buffer: torch.Tensor, slot: int) -> None:
        self.buffer, self.slot = buffer, slot
        self.offset = 0
        self.placed: dict[str, tuple[int, torch.dtype, tuple[int, ...]]] = {}
        self.overflow = False

    def allocate(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A tensor in the slot for field ``name`` (a private one if the slot is full)."""
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        if self.offset + nbytes > self.buffer.shape[0]:
            self.overflow = True
            return torch.empty(shape, dtype=dtype)
        self.placed[name] = (self.offset, dtype, tuple(shape))
        self.offset += _aligned(nbytes)
        return self._view(name)

    def finish(self, batch: dict) -> dict:
        """What crosses the pipe: slot, offsets, and the fields that are not tensors. A
        batch larger than the slot travels whole, the usual way."""
        small = {}
        for name, value in batch.items():
            if not isinstance(value, torch.Tensor):
                small[name] = value
            elif name in self.placed and self.placed[name][2] == tuple(value.shape):
                offset = self.placed[name][0]
                if value.data_ptr() != self.buffer[offset:].data_ptr():
                    self._view(name).copy_(value)
            else:
                self.allocate(name, tuple(value.shape), value.dtype)
                if not self.overflow:
                    self._view(name).copy_(value)
        if self.overflow:
            return {"batch": {k: v.clone() if k in self.placed else v for k, v in batch.items()}}
        return {"slot": self.slot, "placed": self.placed, "small": small}

    def _view(self, name: str) -> torch.Tensor:
        return _slot_view(self.buffer, *self.placed[name])


def read_batch(dataset: Dataset, indices: list[int], writer: SlotWriter | None = None) -> dict:
    """One batch, in pad_collate's shape: a whole-batch read where the dataset has one,
    items collated otherwise; with a ``writer``, written straight into its slot where the
    dataset can (``read_batch(..., allocate=)``, and always for items). A padded batch's
    ``attention_mask`` is built in the slot; the trainer builds it otherwise (from
    ``lengths``: a free broadcast view when no row is padded)."""
    allocate = writer.allocate if writer is not None else None
    reader = as_reader(dataset)
    if reader.reads_batches:
        if allocate is not None and reader.reads_into:
            batch = reader.read_batch(indices, mask=False, allocate=allocate)
        else:
            batch = reader.read_batch(indices, mask=False)
    else:
        batch = pad_collate(reader.__getitems__(indices), allocate=allocate, mask=False)
    return _mask_in_slot(batch, allocate)


def _mask_in_slot(batch: dict, allocate: Callable[..., torch.Tensor] | None) -> dict:
    """A padded batch's mask, built in the slot (no page faults); none otherwise: the
    trainer builds it from ``lengths``."""
    batch.pop("attention_mask", None)
    if allocate is not None and "audio" in batch:
        lengths, width = batch["lengths"].tolist(), batch["audio"].shape[-1]
        if any(length < width for length in lengths):
            batch["attention_mask"] = padding_mask(lengths, width, allocate)
    return batch


class _SlotReads(Dataset):
    """Worker side: index ``(seq, indices)`` -> the batch, written into the ring."""

    def __init__(self, dataset: Dataset, ring: SharedBatchRing) -> None:
        self.dataset = dataset
        self.ring = ring

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, list[int]]) -> dict:
        seq, indices = item
        writer = self.ring.writer(seq)
        return writer.finish(read_batch(self.dataset, indices, writer))


class _NumberedBatches(Sampler):
    """Batches of indices, numbered in the order the DataLoader dispatches them. The
    count runs on across epochs, so the first batches of an epoch never land in the slots
    of the last ones, which the trainer may still hold."""

    def __init__(self, batches: Sampler) -> None:
        self.batches = batches
        self._count = itertools.count()

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        for indices in self.batches:
            yield next(self._count), indices

    def __len__(self) -> int:
        return len(self.batches)


class _SlotBatchesOfItems(IterableDataset):
    """Worker side for an iterable dataset: its items, ``batch_size`` at a time, collated
    into this worker's share of the ring. Each worker numbers its own batches; the count
    runs on across epochs (in the worker when it persists, from ``start`` when the trainer
    forks fresh workers), as :class:`_NumberedBatches` does for map-style datasets."""

    def __init__(
        self,
        dataset: IterableDataset,
        batch_size: int,
        drop_last: bool,
        ring: SharedBatchRing,
        workers: int,
    ) -> None:
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.ring = ring
        self.parts = workers  # the ring's shares, one per worker
        self.start: dict[int, int] = {}
        self._next = 0

    def __len__(self) -> int:
        """Batches per epoch: per worker where the dataset says how it splits its items."""
        counts = as_reader(self.dataset).items_per_worker(self.parts) or [len(self.dataset)]
        if self.drop_last:
            return sum(n // self.batch_size for n in counts)
        return sum(-(-n // self.batch_size) for n in counts)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        seq = max(self._next, self.start.get(worker, 0))
        items = []
        for item in self.dataset:
            items.append(item)
            if len(items) == self.batch_size:
                message = self._write(worker, seq, items)
                seq = self._next = seq + 1  # before the yield: an epoch may stop there
                items = []
                yield message
        if items and not self.drop_last:
            message = self._write(worker, seq, items)
            self._next = seq + 1
            yield message

    def _write(self, worker: int, seq: int, items: list[dict]) -> dict:
        writer = self.ring.writer(seq, worker, self.parts)
        batch = _mask_in_slot(
            pad_collate(items, allocate=writer.allocate, mask=False), writer.allocate
        )
        return {**writer.finish(batch), "worker": worker, "seq": seq}


class SharedBatchLoader:
    """Iterates like a DataLoader of pad_collate-shaped batches; the large tensors are
    views of a shared ring (valid until ``keep`` more batches are taken).

    A map-style dataset comes with ``batches`` (a batch sampler: the trainer numbers the
    batches); an iterable one with ``batch_size`` and ``drop_last``, batched in each worker,
    where every worker numbers its own batches in its own share of the ring. That share
    holds ``prefetch_factor * num_workers + keep`` slots, since once other workers run dry
    the DataLoader may ask one worker for all the batches in flight.
    """

    def __init__(
        self,
        dataset: Dataset,
        batches: Sampler | None = None,
        num_workers: int = 1,
        prefetch_factor: int = 2,
        keep: int = 2,
        slot_bytes: int | None = None,
        pin_memory: bool = False,
        batch_size: int = 32,
        drop_last: bool = False,
        **dataloader_options,
    ) -> None:
        if num_workers < 1:
            raise ValueError("shared batches need worker processes (num_workers >= 1)")
        if dataloader_options.get("in_order", True) is False:
            raise ValueError("shared batches need in_order=True: slots are reused in order")
        iterable = isinstance(dataset, IterableDataset)
        if iterable == (batches is not None):
            raise ValueError("give a batch sampler for a map-style dataset, none for an iterable")
        if slot_bytes is None:  # sized from one batch, with room for longer ones
            if iterable:
                probe_batch = pad_collate(list(itertools.islice(iter(dataset), batch_size)))
            else:
                probe = list(range(min(getattr(batches, "batch_size", 32), len(dataset))))
                probe_batch = read_batch(dataset, probe)
            slot_bytes = max(_ALIGN, int(_slot_bytes_for(probe_batch) * 1.25))
        slots = prefetch_factor * num_workers + keep
        self.ring = SharedBatchRing(slots * (num_workers if iterable else 1), slot_bytes)
        self.keep = keep
        self.pin_memory = pin_memory
        if iterable:
            self._items = _SlotBatchesOfItems(
                dataset, batch_size, drop_last, self.ring, num_workers
            )
            source: Dataset = self._items
            sampling: dict = {}
        else:
            self._items = None
            source = _SlotReads(dataset, self.ring)
            sampling = {"sampler": _NumberedBatches(batches)}
        self._next_seq: dict[int, int] = {}
        self.loader = DataLoader(
            source,
            batch_size=None,
            collate_fn=_as_is,
            num_workers=num_workers,
            prefetch_factor=prefetch_factor,
            **sampling,
            **dataloader_options,
        )
        self._iterating = False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        if self._iterating:  # two iterations would write into each other's slots
            raise RuntimeError("a SharedBatchLoader can be iterated by one loop at a time")
        self._iterating = True
        if self._items is not None:  # workers forked for this epoch go on from here
            self._items.start = dict(self._next_seq)
        try:
            for message in self.loader:
                if "worker" in message:
                    self._next_seq[message["worker"]] = message["seq"] + 1
                batch = self.ring.take(message)
                if "audio" in batch and "attention_mask" not in batch:  # no padded row
                    width = batch["audio"].shape[-1]
                    batch["attention_mask"] = padding_mask(batch["lengths"].tolist(), width)
                if self.pin_memory:
                    batch = {
                        k: v.pin_memory() if isinstance(v, torch.Tensor) else v
                        for k, v in batch.items()
                    }
                yield batch
        finally:
            self._iterating = False


def _as_is(message: dict) -> dict:
    return message
