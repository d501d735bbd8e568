"""One writer module per training format, and the registry ``prep shard`` and ``prep verify``
look formats up in; the reader of the same name is registered in :mod:`loaders.formats`.

A writer is a :class:`~prep.writers.base.FormatWriter` (the contract is in its module).
Per-item writers (``segments``, ``mel``) run in the workers, one file per item. Aggregate
writers (``webdataset``, ``hdf5``, ``memmap``) run once, over every item in order, reading
the audio the workers staged. Writer modules are imported when a writer is first asked
for: ``prep convert`` (using ``files``) imports none of them, nor h5py or webdataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from loaders.formats import Registry

if TYPE_CHECKING:
    from prep.writers.base import FormatWriter

WRITERS = Registry(
    {
        "segments": "prep.writers.segments:SegmentsWriter",
        "mel": "prep.writers.mel:MelWriter",
        "webdataset": "prep.writers.webdataset:WebDatasetWriter",
        "hdf5": "prep.writers.hdf5:HDF5Writer",
        "memmap": "prep.writers.memmap:MemmapWriter",
        "lhotse_shar": "prep.writers.lhotse_shar:LhotseSharWriter",
        "kaldi": "prep.writers.kaldi:KaldiWriter",
        "tensordict": "prep.writers.tensordict:TensorDictWriter",
        "hf": "prep.writers.hf:HFWriter",
        "nemo_tarred": "prep.writers.nemo_tarred:NemoTarredWriter",
    }
)


def register_writer(name: str, writer: str | type[FormatWriter]) -> None:
    """Add (or replace) format ``name``: its writer class, or ``"module:Class"`` to import
    when first used. Plug-ins and tests call it; the built-in formats are listed above."""
    WRITERS.register(name, writer)


def writer_names() -> tuple[str, ...]:
    """Every registered format, in registry order (the built-ins first)."""
    return WRITERS.names()


def get_writer(name: str) -> FormatWriter:
    """The writer of format ``name`` (a :class:`KeyError` when none is registered);
    writers keep no state, so a fresh one costs nothing."""
    return WRITERS.get(name)()


def __getattr__(name: str) -> tuple[str, ...]:
    """``FORMATS``: the registered names, read when asked for, so a registration counts."""
    if name == "FORMATS":
        return writer_names()
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
    path: str = ""  # the input file the item was cut from (kaldi's wav.scp can point at it)


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
