"""One writer module per training format; the reader of the same name lives in ``loaders``.

Per-item writers (``segments``, ``mel``) run in the workers, one file per item. Aggregate
writers (``webdataset``, ``hdf5``, ``memmap``) run once, over every item in order, reading
the audio the workers staged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS: tuple[str, ...] = ("segments", "mel", "webdataset", "hdf5", "memmap")


def __getattr__(name: str) -> dict:
    """``ITEM_WRITERS`` and ``AGGREGATE_WRITERS``, imported when first asked for: the
    writers pull in h5py and webdataset, which ``prep convert`` (using ``files``) never needs."""
    if name == "ITEM_WRITERS":
        from prep.writers import mel, segments

        return {"segments": segments, "mel": mel}
    if name == "AGGREGATE_WRITERS":
        from prep.writers import hdf5, memmap, webdataset

        return {"webdataset": webdataset, "hdf5": hdf5, "memmap": memmap}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class ItemMeta:
    """What a worker knows of one item, and where it staged its samples."""

    key: str
    source: str
    index: int
    start: int
    num_samples: int
    stored_samples: int
    sample_rate: int
    fields: dict = field(default_factory=dict)
    mel_fields: dict = field(default_factory=dict)
    mel_shape: tuple[int, ...] | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    staged: str | None = None
    audio_at: int = 0
    mel_at: int = 0
    text_dropped: bool = False  # a transcript of the whole file, left off a part of it


class StagedRows:
    """Random access to the items the workers staged, memory-mapped batch by batch."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self._arrays: dict[str, np.ndarray] = {}

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.staging / name, mmap_mode="r")
        return self._arrays[name]

    def audio(self, meta: ItemMeta) -> np.ndarray:
        flat = self._array(f"{meta.staged}.audio.npy")
        return np.asarray(flat[meta.audio_at : meta.audio_at + meta.stored_samples])

    def mel(self, meta: ItemMeta) -> np.ndarray:
        size = int(np.prod(meta.mel_shape))
        flat = self._array(f"{meta.staged}.mel.npy")
        return np.asarray(flat[meta.mel_at : meta.mel_at + size]).reshape(meta.mel_shape)

    def close(self) -> None:
        self._arrays.clear()
