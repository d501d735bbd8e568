"""``segments``: one 16-bit mono WAV per item, under 256 hashed subfolders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests import atomic_path
from prep.pcm import pcm16_writer
from prep.segmenting import key_folder


def relative_path(meta) -> str:
    return f"{key_folder(meta.key)}/{meta.key}.wav"


def location(meta) -> dict:
    return {"audio_filepath": relative_path(meta)}


def write_item(folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options) -> None:
    path = folder / relative_path(meta)
    if path.exists():  # written atomically by an earlier run with the same settings
        return
    with atomic_path(path) as tmp, pcm16_writer(tmp, "WAV", meta.sample_rate) as write:
        write(row)
