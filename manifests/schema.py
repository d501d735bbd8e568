"""The fields every audioprep manifest speaks, and their validation.

NeMo-compatible names first (``audio_filepath`` relative to the manifest's folder,
``duration`` and ``offset`` in seconds, ``text``, ``label``), then ours.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from manifests.jsonl import Entry, ManifestError, iter_manifest

NEMO_FIELDS = ("audio_filepath", "duration", "offset", "text", "label")
CONVERTED_FILE_FIELDS = (
    "source",
    "source_size",
    "source_mtime_ns",
    "source_sha256",
    "source_sample_rate",
    "source_channels",
    "source_format",
    "decoder",
    "decoder_version",
    "resampler",
    "resampler_version",
    "resample_quality",
    "sha256",
    "file_size",
    "convert_params",
)
"""What a ``prep convert`` entry says of its converted file as a whole: the same on every
entry of a file listed once per utterance."""
AUDIOPREP_FIELDS = ("sample_rate", "num_samples", "file_num_samples", *CONVERTED_FILE_FIELDS)

_TYPES: dict[str, tuple[type, ...]] = {
    "audio_filepath": (str,),
    "duration": (int, float),
    "offset": (int, float),
    "text": (str,),
    "label": (str, int),
    "sample_rate": (int,),
    "num_samples": (int,),
    "source": (str,),
    "source_size": (int,),
    "source_mtime_ns": (int,),
    "source_sha256": (str,),
    "sha256": (str,),
}


def validate_entry(entry: Entry, required: tuple[str, ...] = ("audio_filepath",)) -> None:
    """Raise :class:`ManifestError` naming the first field that is missing or malformed."""
    for name in required:
        if name not in entry:
            raise ManifestError(f"missing field {name!r}")
    for name, types in _TYPES.items():
        if name not in entry or entry[name] is None:
            continue
        value: Any = entry[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ManifestError(f"field {name!r} has type {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(f"field {name!r} is not finite")
    for name in ("duration", "offset", "num_samples", "source_size"):
        if name in entry and entry[name] is not None and entry[name] < 0:
            raise ManifestError(f"field {name!r} is negative")
    if "sample_rate" in entry and entry["sample_rate"] is not None and entry["sample_rate"] <= 0:
        raise ManifestError("field 'sample_rate' is not positive")


def validate_manifest(
    path: str | os.PathLike[str], required: tuple[str, ...] = ("audio_filepath",)
) -> int:
    """Validate every line of a manifest; return the number of entries."""
    count = 0
    for lineno, entry in enumerate(iter_manifest(path), 1):
        try:
            validate_entry(entry, required)
        except ManifestError as exc:
            raise ManifestError(f"{path}: entry {lineno}: {exc}") from None
        count += 1
    return count


def is_url(location: str | os.PathLike[str]) -> bool:
    """An object-storage location (``s3://bucket/prefix``, any fsspec protocol but file)."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def resolve_audio_path(manifest_path: str | os.PathLike[str], entry: Entry) -> Path:
    """The absolute audio path of an entry: relative paths are taken from the manifest's folder."""
    audio = Path(entry["audio_filepath"])
    return audio if audio.is_absolute() else Path(manifest_path).parent / audio
