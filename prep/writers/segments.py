"""``segments``: one 16-bit mono WAV per item, under 256 hashed subfolders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prep.pcm import encode_pcm16
from prep.segmenting import key_folder
from prep.writers.files import write_once


def relative_path(meta) -> str:
    return f"{key_folder(meta.key)}/{meta.key}.wav"


def location(meta) -> dict:
    return {"audio_filepath": relative_path(meta)}


def write_item(folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options) -> str:
    """Write the item's WAV (unless an earlier run did); return its sha256."""
    return write_once(folder / relative_path(meta), encode_pcm16(row, meta.sample_rate))
