"""Reader for ``prep shard --format memmap``: one int16 ``[N, T]`` array, memory-mapped.

The array is opened lazily in each process (never inherited across fork). A batch
(``read_batch``, or ``__getitems__`` which the DataLoader uses when batching automatically)
is one fancy-index read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from loaders.batched import batch_from_rows
from loaders.per_process import PerProcess
from loaders.sample import audio_tensor, check_dtype, make_sample, read_folder


class MemmapDataset(Dataset):
    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.folder = Path(folder)
        self.format, self.entries = read_folder(self.folder)
        self.sample_rate = int(self.format["sample_rate"])
        self.dtype = check_dtype(dtype)
        path = self.folder / self.format["file"]
        self._array = PerProcess(functools.partial(np.load, path, mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def array(self) -> np.ndarray:
        """This process's memory map of the file (each process maps it itself)."""
        return self._array.get()

    def close(self) -> None:
        self._array.close()

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        row = np.array(self.array[entry["row"]])  # a copy: detached from the read-only map
        return make_sample(entry, self.sample_rate, audio=audio_tensor(row, self.dtype))

    def _rows(self, indices: list[int]) -> np.ndarray:
        """The int16 rows ``[B, T]`` for ``indices``, as one in-memory copy."""
        return self.array[np.array([self.entries[i]["row"] for i in indices])]

    reads_into = True

    def read_batch(self, indices: list[int], mask: bool = True, allocate=None) -> dict:
        """The batch for ``indices`` (pad_collate's shape) from one fancy-index read.

        ``allocate(name, shape, dtype)`` gives the int16 rows a destination (a shared
        slot, see :mod:`loaders.shared_batches`), so they are copied once, not twice.
        """
        entries = [self.entries[i] for i in indices]
        if allocate is None or self.dtype != "int16":
            block = self._rows(indices)
        else:
            rows = np.array([e["row"] for e in entries])
            if len(rows) and (rows.min() < 0 or rows.max() >= len(self.array)):
                raise IndexError(f"{self.folder}: manifest row out of range of the memmap")
            block = allocate("audio", (len(rows), self.array.shape[1]), torch.int16)
            # mode="clip" (rows checked above): with the default "raise", numpy buffers
            # the whole read and copies it again, which made this cost 2.5x more
            np.take(self.array, rows, axis=0, out=block.numpy(), mode="clip")
        return batch_from_rows(block, entries, self.sample_rate, self.dtype, mask)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [
            make_sample(self.entries[i], self.sample_rate, audio=audio_tensor(row, self.dtype))
            for i, row in zip(indices, self._rows(indices), strict=True)
        ]
