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
from loaders.formats import FormatReader
from loaders.per_process import PerProcess
from loaders.sample import FormatError, audio_tensor, make_sample


def check_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The ``.npy`` header against what format.json promises (dtype, C order, shape),
    and the file long enough for that: read from the header only, at open."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            found_shape, fortran, found_dtype = read_header(fh)
            data_at = fh.tell()
    except (ValueError, EOFError) as exc:
        raise FormatError(f"{path}: not a readable .npy file ({exc})") from None
    if found_dtype != dtype or fortran or tuple(found_shape) != tuple(shape):
        order = "Fortran" if fortran else "C"
        raise FormatError(
            f"{path}: {found_dtype.str} {tuple(found_shape)} in {order} order, "
            f"format.json promises {dtype.str} {tuple(shape)} in C order"
        )
    needed = data_at + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise FormatError(f"{path}: {size} bytes, its header needs {needed} (truncated)")


class MemmapDataset(FormatReader, Dataset):
    """Map-style over the rows; the array's header and the manifest's rows are checked
    against format.json when the dataset is made."""

    format_name = "memmap"
    reads_batches = True
    reads_into = True

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.open_folder(folder, dtype)
        path = self.folder / self.format.get("file", "audio.npy")
        shape = (len(self.entries), self.format.get("segment_samples"))
        if self.format.get("shape") not in (None, list(shape)):
            raise FormatError(
                f"{self.folder / 'format.json'}: shape {self.format['shape']}, but "
                f"{len(self.entries)} items of {shape[1]} samples"
            )
        check_npy(path, np.dtype("<i2"), shape)
        rows = sorted(e.get("row") for e in self.entries if isinstance(e.get("row"), int))
        if rows != list(range(len(self.entries))):
            raise FormatError(f"{self.folder / 'manifest.jsonl'}: rows are not 0..N-1, each once")
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
