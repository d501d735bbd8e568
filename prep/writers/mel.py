"""``mel``: one ``.npy`` log-mel ``[n_mels, frames]`` per item, in the stored dtype."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prep.writers.base import ItemFileWriter
from prep.writers.files import check_file


class MelWriter(ItemFileWriter):
    name = "mel"
    suffix = ".npy"
    location_field = "mel_filepath"
    computes_mel = True
    carries_mel = True

    def encode(self, meta, row: np.ndarray, mel: np.ndarray | None) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, mel)
        return buffer.getvalue()

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each ``.npy``: present, of its recorded hash, ``[n_mels, frames]``."""
        n_mels = fmt.get("mel", {}).get("n_mels")
        for entry in entries:
            rel = entry["mel_filepath"]
            name = f"{label}/{rel}"
            problems = list(check_file(folder / rel, name, None, entry.get("sha256")))
            if not problems:
                try:
                    shape = np.load(folder / rel, mmap_mode="r").shape
                except (ValueError, OSError) as exc:
                    problems.append(f"{name}: unreadable ({exc})")
                else:
                    if len(shape) != 2 or shape[0] != n_mels:
                        problems.append(f"{name}: shape {shape}, expected [{n_mels}, frames]")
            yield from problems
