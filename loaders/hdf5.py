"""Reader for ``prep shard --format hdf5``: ``data.h5`` through h5py.

Its datasets, dtypes, shapes and attributes are checked against ``format.json`` when the
dataset is made. The file is then opened lazily in each process (an h5py handle must
never cross a fork), kept for the dataset's life in that process, and closed with
:meth:`close` (or by h5py when the dataset is collected). Batches of fixed-length rows
(``read_batch``, ``__getitems__``) are read row by row in file order: h5py's fancy
selection of many rows is about 70 times slower.
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
from loaders.formats import FormatReader
from loaders.mel_storage import feature_frames, from_storage
from loaders.per_process import PerProcess
from loaders.sample import FormatError, audio_tensor, check_with_mel, make_sample


def _expect(path: Path, f: h5py.File, name: str, dtype: np.dtype, shape: tuple) -> h5py.Dataset:
    """Dataset ``name``, of ``dtype`` and ``shape`` (``None`` in it: any length there)."""
    if not isinstance(f.get(name), h5py.Dataset):
        raise FormatError(f"{path}: no {name!r} dataset")
    ds = f[name]
    fits = len(ds.shape) == len(shape) and all(
        want is None or have == want for have, want in zip(ds.shape, shape, strict=True)
    )
    if ds.dtype != dtype or not fits:
        raise FormatError(
            f"{path}: dataset {name!r} is {ds.dtype} {ds.shape}, format.json promises "
            f"{np.dtype(dtype)} {tuple('any' if d is None else d for d in shape)}"
        )
    return ds


def check_hdf5(path: Path, fmt: dict, n: int, fixed: bool, with_mel: bool) -> None:
    """``data.h5``'s datasets, dtypes, shapes and attributes against format.json: at
    open, from a handle closed again before any worker starts."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        for attr, want in (
            ("sample_rate", fmt["sample_rate"]),
            ("segment_samples", fmt.get("segment_samples") or 0),
        ):
            if f.attrs.get(attr) != want:
                raise FormatError(f"{path}: {attr} {f.attrs.get(attr)}, format.json says {want}")
        int16 = np.dtype(np.int16)
        if fixed:
            _expect(path, f, "audio", int16, (n, fmt["segment_samples"]))
        else:
            audio = _expect(path, f, "audio", int16, (None,))
            offsets = _expect(path, f, "offsets", np.dtype(np.int64), (n + 1,))[()]
            if offsets[0] != 0 or offsets[-1] != audio.shape[0] or (np.diff(offsets) < 0).any():
                raise FormatError(f"{path}: 'offsets' do not cover 'audio' in order")
        if with_mel and n:
            mel_dtype, n_mels = np.dtype(fmt.get("mel_dtype", "float32")), fmt["mel"]["n_mels"]
            if fixed:
                frames = feature_frames(fmt["mel"], fmt["segment_samples"])
                _expect(path, f, "mel", mel_dtype, (n, n_mels, frames))
            else:
                mel = _expect(path, f, "mel", mel_dtype, (n_mels, None))
                ends = _expect(path, f, "mel_offsets", np.dtype(np.int64), (n + 1,))[()]
                if ends[0] != 0 or ends[-1] != mel.shape[1] or (np.diff(ends) < 0).any():
                    raise FormatError(f"{path}: 'mel_offsets' do not cover 'mel' in order")


class HDF5Dataset(FormatReader, Dataset):
    format_name = "hdf5"
    reads_batches = True
    reads_into = True

    def __init__(self, folder: str | Path, dtype: str = "float32", with_mel: bool = False) -> None:
        """``with_mel``: also read each item's stored mel (``mel``, ``mel_lengths`` in a
        batch); off by default, as reading it costs about a third of the audio-only speed."""
        self.open_folder(folder, dtype)
        check_with_mel(self.folder, self.format, with_mel)
        self.fixed = (
            self.format.get("segment_samples") is not None and self.format["last"] != "keep"
        )
        self.with_mel = with_mel
        path = self.folder / self.format.get("file", "data.h5")
        check_hdf5(path, self.format, len(self.entries), self.fixed, "mel" in self.format)
        rows = sorted(e.get("row") for e in self.entries if isinstance(e.get("row"), int))
        if rows != list(range(len(self.entries))):
            raise FormatError(f"{self.folder / 'manifest.jsonl'}: rows are not 0..N-1, each once")
        self._file = PerProcess(functools.partial(h5py.File, path, "r"))

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
