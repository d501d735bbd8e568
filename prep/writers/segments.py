"""``segments``: one 16-bit mono WAV per item, under 256 hashed subfolders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prep.pcm import encode_pcm16
from prep.writers.base import ItemFileWriter
from prep.writers.files import check_file, check_wav, stored_samples


class SegmentsWriter(ItemFileWriter):
    name = "segments"
    suffix = ".wav"
    location_field = "audio_filepath"

    def encode(self, meta, row: np.ndarray, mel: np.ndarray | None) -> bytes:
        return encode_pcm16(row, meta.sample_rate)

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each WAV: present, of its recorded hash, and of the rate and length promised."""
        for entry in entries:
            rel = entry["audio_filepath"]
            name = f"{label}/{rel}"
            problems = list(check_file(folder / rel, name, None, entry.get("sha256")))
            if not problems:
                frames = stored_samples(fmt, entry)
                problems += check_wav(folder / rel, name, frames, fmt["sample_rate"])
            yield from problems
