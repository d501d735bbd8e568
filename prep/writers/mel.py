"""``mel``: one ``.npy`` log-mel ``[n_mels, frames]`` per item, in the stored dtype."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests import atomic_path
from prep.segmenting import key_folder


def relative_path(meta) -> str:
    return f"{key_folder(meta.key)}/{meta.key}.npy"


def location(meta) -> dict:
    return {"mel_filepath": relative_path(meta)}


def write_item(folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options) -> None:
    path = folder / relative_path(meta)
    if path.exists():
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, mel)
