"""Reader for ``prep shard --format tensordict``: ``data/`` through ``TensorDict.load_memmap``.

``meta.json`` and the size of every tensor's file are checked against format.json, and the
stored ``lengths`` against the manifest, when the dataset is made. The TensorDict is then
loaded lazily in each process (a memory map is never inherited across fork). A batch
(``read_batch``, ``__getitems__``) is one index read per tensor, as torchrl's
``LazyMemmapStorage`` reads a batch (``td[rows]``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from tensordict import TensorDict
from torch.utils.data import Dataset

from loaders.batched import batch_from_rows
from loaders.formats import FormatReader
from loaders.mel_storage import from_storage
from loaders.per_process import PerProcess
from loaders.sample import FormatError, audio_tensor, check_with_mel, make_sample


def check_layout(directory: Path, fmt: dict, n: int) -> None:
    """tensordict's ``meta.json`` and the tensors' files against the tensors format.json
    promises (``N`` the manifest's items), from the files' headers and sizes only: a file
    shorter than its tensor would kill a reader with SIGBUS, not raise."""
    promised = fmt.get("tensors")
    if not isinstance(promised, dict) or "audio" not in promised:
        raise FormatError(f"{directory.parent / 'format.json'}: no 'tensors' with 'audio'")
    try:
        meta = json.loads((directory / "meta.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise FormatError(f"{directory / 'meta.json'}: unreadable ({exc})") from None
    for name, want in promised.items():
        expected = (f"torch.{want['dtype']}", [n, *want["shape"][1:]])
        found = meta.get(name) if isinstance(meta, dict) else None
        have = (found.get("dtype"), found.get("shape")) if isinstance(found, dict) else None
        if have != expected:
            raise FormatError(
                f"{directory / 'meta.json'}: {name!r} is {have}, format.json and the "
                f"manifest promise {expected[0]} {expected[1]}"
            )
        path = directory / f"{name}.memmap"
        needed = getattr(torch, want["dtype"]).itemsize * int(torch.Size(expected[1]).numel())
        size = path.stat().st_size if path.exists() else None
        if size is None or size < needed:
            raise FormatError(f"{path}: {size} bytes, {name!r} needs {needed} (truncated)")


def _load(directory: Path) -> TensorDict:
    return TensorDict.load_memmap(directory)


class TensorDictDataset(FormatReader, Dataset):
    """Map-style over the rows of a memory-mapped TensorDict; ``with_mel`` also reads the
    stored mel (``mel``, ``mel_lengths`` in a batch)."""

    format_name = "tensordict"
    reads_batches = True
    reads_into = True

    def __init__(self, folder: str | Path, dtype: str = "float32", with_mel: bool = False) -> None:
        self.open_folder(folder, dtype)
        check_with_mel(self.folder, self.format, with_mel)
        self.with_mel = with_mel
        directory = self.folder / self.format.get("directory", "data")
        check_layout(directory, self.format, len(self.entries))
        rows = [e.get("row") for e in self.entries]
        if sorted(r for r in rows if isinstance(r, int)) != list(range(len(self.entries))):
            raise FormatError(f"{self.folder / 'manifest.jsonl'}: rows are not 0..N-1, each once")
        stored = _load(directory)["lengths"][torch.tensor(rows, dtype=torch.long)]
        listed = torch.tensor([int(e["num_samples"]) for e in self.entries], dtype=torch.long)
        if not torch.equal(stored, listed):
            raise FormatError(f"{directory}: stored lengths differ from the manifest's num_samples")
        self._td = PerProcess(functools.partial(_load, directory))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def td(self) -> TensorDict:
        """This process's memory-mapped TensorDict (each process loads it itself)."""
        return self._td.get()

    def close(self) -> None:
        self._td.close()

    def _rows(self, indices: list[int]) -> torch.Tensor:
        return torch.tensor([self.entries[i]["row"] for i in indices], dtype=torch.long)

    def _mel(self, rows: torch.Tensor, entries: list[dict]) -> list[torch.Tensor]:
        stored = self.td["mel"][rows].numpy()
        return [torch.from_numpy(from_storage(m, e)) for m, e in zip(stored, entries, strict=True)]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        entries = [self.entries[i] for i in indices]
        rows = self._rows(indices)
        audio = self.td["audio"][rows]
        mels = self._mel(rows, entries) if self.with_mel else [None] * len(entries)
        samples = []
        for entry, row, mel in zip(entries, audio, mels, strict=True):
            tensors = {"audio": audio_tensor(row, self.dtype)}
            if mel is not None:
                tensors["mel"] = mel
            samples.append(make_sample(entry, self.sample_rate, **tensors))
        return samples

    def read_batch(self, indices: list[int], mask: bool = True, allocate=None) -> dict:
        """The batch for ``indices`` (pad_collate's shape), one index read per tensor.

        ``allocate(name, shape, dtype)`` gives the int16 rows a destination (a shared
        slot, see :mod:`loaders.shared_batches`), so they are copied once, not twice.
        """
        entries = [self.entries[i] for i in indices]
        rows = self._rows(indices)
        stored = self.td["audio"]
        if allocate is None or self.dtype != "int16":
            block = stored[rows]
        else:
            if len(rows) and (rows.min() < 0 or rows.max() >= len(stored)):
                raise IndexError(f"{self.folder}: manifest row out of range of the tensordict")
            block = allocate("audio", (len(rows), stored.shape[1]), torch.int16)
            torch.index_select(stored, 0, rows, out=block)
        batch = batch_from_rows(block, entries, self.sample_rate, self.dtype, mask)
        if self.with_mel:
            mels = self._mel(rows, entries)
            batch["mel"] = torch.stack(mels)
            batch["mel_lengths"] = torch.tensor([m.shape[-1] for m in mels])
        return batch
