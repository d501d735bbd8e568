"""``mel``: one ``.npy`` log-mel ``[n_mels, frames]`` per item, in the stored dtype."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from prep.segmenting import key_folder
from prep.writers.files import write_once


def relative_path(meta) -> str:
    return f"{key_folder(meta.key)}/{meta.key}.npy"


def location(meta) -> dict:
    return {"mel_filepath": relative_path(meta)}


def write_item(folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options) -> str:
    """Write the item's ``.npy`` (unless an earlier run did); return its sha256."""
    buffer = io.BytesIO()
    np.save(buffer, mel)
    return write_once(folder / relative_path(meta), buffer.getvalue())
