"""The sample contract every dataset yields, and the step that turns int16 into float32.

A sample is a dict: ``key``; ``audio`` (float32 in [-1, 1], shape ``[T]``) and/or ``mel``
(``[n_mels, frames]``); ``length`` (real samples before padding); ``sample_rate``; and
``text`` / ``label`` when the manifest has them. With ``dtype="int16"`` the audio stays
int16 (half the bytes across the worker boundary); :func:`to_float` gives the same float32
values on whatever device the batch is on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from loaders.decode import INT16_SCALE
from manifests import Entry, is_url, iter_manifest, parse_manifest_lines

AUDIO_DTYPES = ("float32", "int16")


def check_dtype(dtype: str) -> str:
    if dtype not in AUDIO_DTYPES:
        raise ValueError(f"dtype must be one of {AUDIO_DTYPES}, not {dtype!r}")
    return dtype


def audio_tensor(samples: np.ndarray | torch.Tensor, dtype: str) -> torch.Tensor:
    """int16 samples as the contract's tensor: float32 / 32768, or int16 untouched."""
    if isinstance(samples, torch.Tensor):
        return samples if dtype == "int16" else to_float(samples)
    if dtype == "int16":
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.int16))
    return torch.from_numpy(samples.astype(np.float32) / np.float32(INT16_SCALE))


def to_float(audio: torch.Tensor) -> torch.Tensor:
    """int16 audio to float32 in [-1, 1] (exactly what the float32 path yields); float as is."""
    if audio.dtype == torch.int16:
        return audio.to(torch.float32) / INT16_SCALE
    return audio


def make_sample(entry: Entry, sample_rate: int, **tensors: torch.Tensor) -> dict:
    sample = {"key": entry.get("key", entry.get("audio_filepath")), **tensors}
    sample["length"] = int(entry.get("num_samples", 0))
    sample["sample_rate"] = sample_rate
    for name in ("text", "label"):
        if name in entry:
            sample[name] = entry[name]
    return sample


def read_folder(folder: str | Path) -> tuple[dict, list[Entry]]:
    """A prep folder's ``format.json`` (empty for a ``prep convert`` folder) and manifest."""
    if is_url(folder):
        import fsspec  # only for object storage

        base = folder.rstrip("/")
        with fsspec.open(f"{base}/format.json", "rb") as fh:
            fmt = json.loads(fh.read())
        with fsspec.open(f"{base}/manifest.jsonl", "rb") as fh:
            lines = fh.read().decode("utf-8").splitlines()
        return fmt, list(parse_manifest_lines(lines, f"{base}/manifest.jsonl"))
    folder = Path(folder)
    fmt_path = folder / "format.json"
    fmt = json.loads(fmt_path.read_text(encoding="utf-8")) if fmt_path.exists() else {}
    return fmt, list(iter_manifest(folder / "manifest.jsonl"))
