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
import soundfile as sf
import torch

from loaders.formats import FORMAT_VERSIONS
from loaders.int16 import INT16_SCALE
from manifests import Entry, is_url, iter_manifest, parse_manifest_lines

AUDIO_DTYPES = ("float32", "int16")


def check_dtype(dtype: str) -> str:
    if dtype not in AUDIO_DTYPES:
        raise ValueError(f"dtype must be one of {AUDIO_DTYPES}, not {dtype!r}")
    return dtype


def check_with_mel(folder: object, fmt: dict, with_mel: bool) -> None:
    """Asking for stored mel from a set that has none is refused at open, not a missing
    ``mel`` key many batches later."""
    if with_mel and "mel" not in fmt:
        raise ValueError(
            f"{folder}: with_mel=True, but this set stores no mel "
            "(prep shard computes it when --format includes mel)"
        )


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


def read_pcm16(
    path,
    name: str | Path,
    sample_rate: int,
    frames: int | None = None,
    start: int = 0,
    count: int = -1,
) -> np.ndarray:
    """int16 samples from a 16-bit mono WAV/FLAC (``path``: a path or a file object), after
    checking its header against what the folder promises: the rate, mono, 16-bit, and
    ``frames`` when known. The header is read anyway, so the checks cost nothing."""
    try:
        with sf.SoundFile(path) as f:
            if f.samplerate != sample_rate or f.channels != 1:
                raise FormatError(
                    f"{name}: {f.samplerate} Hz {f.channels} ch, expected {sample_rate} Hz mono"
                )
            if f.subtype != "PCM_16":
                raise FormatError(f"{name}: {f.subtype} samples, expected PCM_16")
            if frames is not None and f.frames != frames:
                raise FormatError(f"{name}: {f.frames} samples, the manifest says {frames}")
            if start:
                f.seek(start)
            return f.read(count, dtype="int16")
    except sf.LibsndfileError as exc:
        raise FormatError(f"{name}: cannot read it ({exc.error_string})") from None


def stored_samples(fmt: dict, entry: Entry) -> int:
    """Samples an item holds in a shard folder: the segment length when every item was
    padded or cut to it, else its own ``num_samples``."""
    if fmt.get("segment_samples") and fmt.get("last") in ("pad", "drop"):
        return int(fmt["segment_samples"])
    return int(entry["num_samples"])


class FormatError(ValueError):
    """A folder whose files do not hold what its ``format.json`` or manifest promise."""


def parse_format(text: str | bytes, name: str | Path) -> dict:
    """``format.json``'s text as a dict, or one :class:`FormatError` line naming it."""
    try:
        fmt = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(fmt, dict):
        raise FormatError(f"{name}: not a JSON object")
    return fmt


def check_format(
    fmt: dict,
    name: str | Path,
    kind: str,
    entries: list[Entry],
    versions: tuple[int, ...] = FORMAT_VERSIONS,
) -> None:
    """What every reader checks at open: the format's name, a version it reads
    (``versions``) and sample rate, and that the manifest holds the items, at the rate,
    that ``format.json`` says."""
    if fmt.get("format") != kind:
        raise FormatError(f"{name}: format {fmt.get('format')!r}, expected {kind!r}")
    if fmt.get("version") not in versions:
        raise FormatError(
            f"{name}: version {fmt.get('version')!r}; this reader reads version "
            + ", ".join(map(str, versions))
        )
    rate = fmt.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise FormatError(f"{name}: sample_rate {rate!r} is not a positive integer")
    params = fmt.get("params")
    for field, value in params.items() if isinstance(params, dict) else ():
        if field in fmt and fmt[field] != value:  # the run's record of its own settings
            raise FormatError(f"{name}: {field} {fmt[field]!r}, but params say {value!r}")
    if fmt.get("num_items") != len(entries):
        raise FormatError(
            f"{name}: says {fmt.get('num_items')!r} items, its manifest.jsonl has {len(entries)}"
        )
    for entry in entries:
        if entry.get("sample_rate", rate) != rate:
            raise FormatError(
                f"{name}: sample_rate {rate}, but manifest.jsonl has {entry.get('key')!r} "
                f"at {entry['sample_rate']}"
            )


def read_folder(
    folder: str | Path, kind: str | None = None, versions: tuple[int, ...] = FORMAT_VERSIONS
) -> tuple[dict, list[Entry]]:
    """A prep folder's ``format.json`` and manifest; with ``kind``, the format.json must
    exist and pass :func:`check_format` (without, it is empty for a ``prep convert``
    folder)."""
    if is_url(folder):
        import fsspec  # only for object storage

        base = folder.rstrip("/")
        with fsspec.open(f"{base}/format.json", "rb") as fh:
            fmt = parse_format(fh.read(), f"{base}/format.json")
        with fsspec.open(f"{base}/manifest.jsonl", "rb") as fh:
            lines = fh.read().decode("utf-8").splitlines()
        entries = list(parse_manifest_lines(lines, f"{base}/manifest.jsonl"))
        fmt_name: str | Path = f"{base}/format.json"
    else:
        folder = Path(folder)
        fmt_name = folder / "format.json"
        if fmt_name.exists():
            fmt = parse_format(fmt_name.read_bytes(), fmt_name)
        elif kind is not None:
            raise FormatError(f"{fmt_name}: missing (not a finished prep shard folder)")
        else:
            fmt = {}
        manifest = folder / "manifest.jsonl"
        if not manifest.exists():
            raise FormatError(f"{manifest}: missing")
        entries = list(iter_manifest(manifest))
    if kind is not None:
        check_format(fmt, fmt_name, kind, entries, versions)
    return fmt, entries
