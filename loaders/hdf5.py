"""Reader for ``prep shard --format hdf5``: ``data.h5`` through h5py.

The file is opened lazily in each process (an h5py handle must never cross a fork), kept
for the dataset's life in that process, and closed with :meth:`close` (or by h5py when the
dataset is collected). Batches of fixed-length rows (``read_batch``, ``__getitems__``) are
read row by row in file order: h5py's fancy selection of many rows is about 70 times slower.
"""

from __future__ import annotations

import functools
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from loaders.batched import batch_from_rows
from loaders.collate import pad_collate
from loaders.mel_storage import from_storage
from loaders.per_process import PerProcess
from loaders.sample import audio_tensor, check_dtype, make_sample, read_folder


class HDF5Dataset(Dataset):
    def __init__(self, folder: str | Path, dtype: str = "float32", with_mel: bool = True) -> None:
        self.folder = Path(folder)
        self.format, self.entries = read_folder(self.folder)
        self.sample_rate = int(self.format["sample_rate"])
        self.dtype = check_dtype(dtype)
        self.fixed = (
            self.format.get("segment_samples") is not None and self.format["last"] != "keep"
        )
        self.with_mel = with_mel and "mel" in self.format
        self._file = PerProcess(
            functools.partial(h5py.File, self.folder / self.format["file"], "r")
        )

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def file(self) -> h5py.File:
        """This process's handle on the file (each process opens it itself)."""
        return self._file.get()

    def close(self) -> None:
        self._file.close()

    def _sample(self, entry: dict, audio: np.ndarray, mel: np.ndarray | None) -> dict:
        tensors = {"audio": audio_tensor(audio, self.dtype)}
        if mel is not None:
            tensors["mel"] = torch.from_numpy(from_storage(mel, entry))
        return make_sample(entry, self.sample_rate, **tensors)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        row = entry["row"]
        f = self.file
        if self.fixed:
            audio = f["audio"][row]
            mel = f["mel"][row] if self.with_mel else None
        else:
            start, stop = f["offsets"][row : row + 2]
            audio = f["audio"][start:stop]
            mel = None
            if self.with_mel:
                m0, m1 = f["mel_offsets"][row : row + 2]
                mel = f["mel"][:, m0:m1]
        return self._sample(entry, audio, mel)

    def _read_rows(
        self, entries: list[dict], out: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Fixed-length audio rows ``[B, T]`` (into ``out`` when given) and stored mel for
        ``entries``, in file order."""
        f = self.file
        audio_ds, mel_ds = f["audio"], (f["mel"] if self.with_mel else None)
        block = np.empty((len(entries), audio_ds.shape[1]), dtype=np.int16) if out is None else out
        mels: list[np.ndarray | None] = [None] * len(entries)
        for j in sorted(range(len(entries)), key=lambda j: entries[j]["row"]):
            block[j] = audio_ds[entries[j]["row"]]  # h5py read_direct measured slower here
            if mel_ds is not None:
                mels[j] = mel_ds[entries[j]["row"]]
        return block, mels

    reads_into = True

    def read_batch(self, indices: list[int], mask: bool = True, allocate=None) -> dict:
        """The batch for ``indices`` (pad_collate's shape). ``allocate(name, shape, dtype)``
        gives int16 rows (or a variable-length batch) its destination, a shared slot (see
        :mod:`loaders.shared_batches`), so it is written once, not copied there after."""
        if not self.fixed:
            return pad_collate(self.__getitems__(indices), allocate=allocate, mask=mask)
        entries = [self.entries[i] for i in indices]
        out = None
        if allocate is not None and self.dtype == "int16":
            shape = (len(entries), self.file["audio"].shape[1])
            out = allocate("audio", shape, torch.int16).numpy()
        block, mels = self._read_rows(entries, out)
        batch = batch_from_rows(block, entries, self.sample_rate, self.dtype, mask)
        if self.with_mel:
            stored = [
                torch.from_numpy(from_storage(m, e)) for m, e in zip(mels, entries, strict=True)
            ]
            batch["mel"] = torch.stack(stored)
            batch["mel_lengths"] = torch.tensor([m.shape[-1] for m in stored])
        return batch

    def __getitems__(self, indices: list[int]) -> list[dict]:
        if not self.fixed:
            return [self[i] for i in indices]
        entries = [self.entries[i] for i in indices]
        block, mels = self._read_rows(entries)
        return [self._sample(e, row, m) for e, row, m in zip(entries, block, mels, strict=True)]
