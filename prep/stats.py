"""``prep stats``: what a folder or manifest holds, with a duration histogram.

The XLSR fine-tuning log chose its length cut-off from such a histogram; this prints one.
What is counted depends on what PATH is: a ``prep convert`` folder (its converted files,
and separately the sources they came from), a ``prep shard`` OUT (each format folder and
what its item is), one format folder, a manifest, or a folder of audio (decoded headers).
Manifests and ``format.json`` are read through :mod:`prep.storage`, so object storage
works for all but a folder of audio, which would mean fetching every file.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable

import numpy as np

from loaders.audio.errors import DecodeError
from loaders.audio.quiet import quiet_native_stderr
from loaders.audio.registry import open_audio
from loaders.mel_storage import feature_frames
from prep.shard.options import MEL_DEFAULTS
from prep.sources import SourceError, discover, is_manifest
from prep.storage import Location, location

UNKNOWN = "unknown"
"""The sample rate or channels of a manifest line that does not say (it is not decoded)."""
MEL_ONLY_FORMATS = frozenset({"mel"})
"""Formats whose items hold the mel only, not the audio it was computed from."""
READABLE_STEPS = (1.0, 2.0, 2.5, 5.0)
"""Histogram bin widths are one of these times a power of ten."""
SMALLEST_STEP = 0.001
"""Narrower bins than a millisecond would only show rounding."""


def _disk_bytes(where: Location) -> int:
    folder = where.local_path
    if folder is None:
        return sum(where.list_files().values())
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _count_lines(where: Location) -> int:
    try:
        text = where.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.strip())


def _is_duration(value: object) -> bool:
    """A manifest duration that can be counted: a finite, non-negative number."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _counts(counter: Counter) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))}


def _readable_step(lo: float, hi: float, bins: int) -> tuple[float, int, int]:
    """The narrowest readable bin width whose bins on multiples of it cover [lo, hi] in at
    most ``bins`` bins; with the first and last multiple."""
    power = 10.0 ** math.floor(math.log10(max((hi - lo) / bins, SMALLEST_STEP)))
    while True:
        for mantissa in READABLE_STEPS:
            step = max(mantissa * power, SMALLEST_STEP)
            # rounded first: 0.3 / 0.1 is 2.9999999999999996
            first, last = math.floor(round(lo / step, 9)), math.ceil(round(hi / step, 9))
            while round(first * step, 9) > lo:  # float division may land one multiple off
                first -= 1
            while round(last * step, 9) < hi:
                last += 1
            if last == first:  # lo == hi on a multiple
                last += 1
            if last - first <= bins:
                return step, first, last
        power *= 10


def duration_histogram(durations: list[float], bins: int) -> dict:
    """At most ``bins`` bins over [min, max] with edges at readable values (one bin, of
    zero width, when every item has the same length)."""
    if not durations:
        return {"edges": [], "counts": []}
    lo, hi = min(durations), max(durations)
    if lo == hi:
        return {"edges": [lo, hi], "counts": [len(durations)]}
    step, first, last = _readable_step(lo, hi, bins)
    edges = [round(k * step, 9) for k in range(first, last + 1)]
    counts, _ = np.histogram(durations, bins=edges)
    return {"edges": edges, "counts": [int(c) for c in counts]}


def _durations(entries: Iterable[dict]) -> tuple[list[dict], int]:
    """The entries with a usable duration, and how many had none."""
    usable, invalid = [], 0
    for entry in entries:
        if _is_duration(entry.get("duration", 0.0)):
            usable.append(entry)
        else:
            invalid += 1  # counted, never in the hours or the histogram
    return usable, invalid


def _summary(path: str, kind: str, durations: list[float]) -> dict:
    return {
        "path": path,
        "kind": kind,
        "items": len(durations),
        "hours": sum(durations) / 3600,
        "duration_min": min(durations, default=0.0),
        "duration_median": statistics.median(durations) if durations else 0.0,
        "duration_max": max(durations, default=0.0),
    }


def _item(fmt: dict) -> dict:
    """What one item of a format is: its length and the arrays it holds (shape ``None``
    where items differ in length)."""
    rate, segment = int(fmt["sample_rate"]), fmt.get("segment_samples")
    fixed = segment is not None and fmt.get("last") != "keep"
    audio = None
    if fmt.get("format") not in MEL_ONLY_FORMATS:
        audio = {"dtype": "int16", "shape": [segment if fixed else None]}
        if fmt.get("codec"):
            audio["codec"] = fmt["codec"]
    mel = None
    if isinstance(fmt.get("mel"), dict):
        settings = {**MEL_DEFAULTS, **fmt["mel"]}  # a library run may record only its changes
        frames = feature_frames(settings, segment) if fixed else None
        mel = {"dtype": fmt.get("mel_dtype", "float32"), "shape": [settings["n_mels"], frames]}
    return {
        "samples": segment,
        "seconds": segment / rate if segment is not None else None,
        "last": fmt.get("last"),
        "audio": audio,
        "mel": mel,
    }


def _read_format(folder: Location) -> dict:
    where = folder.join("format.json")
    try:
        fmt = json.loads(where.read_bytes())
    except ValueError as exc:
        raise SourceError(f"{where}: not JSON ({exc})") from None
    if not isinstance(fmt, dict) or "sample_rate" not in fmt:
        raise SourceError(f"{where}: not a prep shard format.json")
    return fmt


def _format_folder(folder: Location, bins: int, label: str = "") -> tuple[dict, dict[str, float]]:
    """One format folder's stats, and its items' durations by key."""
    fmt = _read_format(folder)
    entries, invalid = _durations(folder.join("manifest.jsonl").iter_manifest())
    by_key = {str(e.get("key", i)): float(e["duration"]) for i, e in enumerate(entries)}
    durations = [float(e["duration"]) for e in entries]
    try:
        item = _item(fmt)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise SourceError(f"{folder.join('format.json')}: unexpected settings ({exc!r})") from None
    stats = _summary(label or str(folder), "format", durations)
    stats.update(
        {
            "format": fmt.get("format"),
            "item": item,
            "sample_rates": {str(fmt["sample_rate"]): len(durations)},
            "channels": {"1": len(durations)},
            "disk_bytes": _disk_bytes(folder),
            "errors": _count_lines(folder.parent.join("errors.jsonl")),
            "invalid_entries": invalid,
            "histogram": duration_histogram(durations, bins),
        }
    )
    return stats, by_key


def _format_names(root: Location) -> tuple[list[str], list[str]]:
    """The format folders of a ``prep shard`` OUT: finished ones (a format.json), and
    those an interrupted run left (a ``.params.json`` only)."""
    if root.local_path is not None:
        found = [p.relative_to(root.local_path).as_posix() for p in root.local_path.glob("*/*")]
    else:
        found = list(root.list_files())
    names = {marker: set() for marker in ("format.json", ".params.json")}
    for name in found:
        parts = name.split("/")
        if len(parts) == 2 and parts[1] in names:
            names[parts[1]].add(parts[0])
    done = names["format.json"]
    return sorted(done), sorted(names[".params.json"] - done)


def _shard_root(root: Location, names: list[str], unfinished: list[str], bins: int) -> dict:
    """Each format on its own; the items are those of the formats (one run cuts the same
    items for every format), each key counted once."""
    formats, items = [], {}
    for name in names:
        stats, by_key = _format_folder(root.join(name), bins)
        (rate,) = stats["sample_rates"]  # a format has one
        formats.append(
            {
                "format": stats["format"],
                "path": name,
                "sample_rate": int(rate),
                "items": stats["items"],
                "hours": stats["hours"],
                "disk_bytes": stats["disk_bytes"],
                "invalid_entries": stats["invalid_entries"],
                "item": stats["item"],
            }
        )
        for key, seconds in by_key.items():
            items.setdefault(key, (seconds, rate))
    durations = [seconds for seconds, _ in items.values()]
    stats = _summary(str(root), "shard", durations)
    stats.update(
        {
            "sample_rates": _counts(Counter(rate for _, rate in items.values())),
            "channels": {"1": len(durations)},
            "disk_bytes": _disk_bytes(root),
            "errors": _count_lines(root.join("errors.jsonl")),
            "invalid_entries": sum(f["invalid_entries"] for f in formats),
            "formats": formats,
            "unfinished_formats": unfinished,
            "histogram": duration_histogram(durations, bins),
        }
    )
    return stats


def _per_file(entries: list[dict], name: str, field: str, default: object) -> Counter:
    """``field`` counted once per distinct file ``name`` (utterances share their file)."""
    seen: dict[object, object] = {}
    for i, entry in enumerate(entries):
        value = entry.get(field, default)
        seen.setdefault(_file_of(entry, name, i), value if _countable(value) else UNKNOWN)
    return Counter(seen.values())


def _file_of(entry: dict, name: str, index: int) -> object:
    """The file an entry names, or its own index when it names none."""
    value = entry.get(name)
    return value if isinstance(value, str) else index


def _countable(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _manifest(manifest: Location, folder: Location, label: str, bins: int) -> dict:
    """A ``prep convert`` manifest (converted files and their sources told apart), or any
    other manifest (what its lines say; nothing is decoded)."""
    entries, invalid = _durations(manifest.iter_manifest())
    converted = any("source_sample_rate" in e or "convert_params" in e for e in entries)
    durations = [float(e["duration"]) for e in entries]
    stats = _summary(label, "convert" if converted else "manifest", durations)
    files = len({_file_of(e, "audio_filepath", i) for i, e in enumerate(entries)})
    stats.update(
        {
            "files": files,
            "sample_rates": _counts(_per_file(entries, "audio_filepath", "sample_rate", UNKNOWN)),
            # prep convert writes mono
            "channels": _counts(
                _per_file(entries, "audio_filepath", "channels", 1 if converted else UNKNOWN)
            ),
        }
    )
    if converted:
        stats["sources"] = {
            "files": len({_file_of(e, "source", i) for i, e in enumerate(entries)}),
            "sample_rates": _counts(_per_file(entries, "source", "source_sample_rate", UNKNOWN)),
            "channels": _counts(_per_file(entries, "source", "source_channels", UNKNOWN)),
            "formats": _counts(_per_file(entries, "source", "source_format", UNKNOWN)),
        }
    stats.update(
        {
            "disk_bytes": _disk_bytes(folder),
            "errors": _count_lines(folder.join("errors.jsonl")),
            "invalid_entries": invalid,
            "histogram": duration_histogram(durations, bins),
        }
    )
    return stats


def _audio_folder(where: Location, bins: int) -> dict:
    """Audio files as they are: each one's header decoded."""
    folder = where.local_path
    if folder is None:
        raise SourceError(
            f"{where}: no manifest.jsonl or format.json in it; prep stats reads audio "
            "files from local folders only (it would fetch every object)"
        )
    durations: list[float] = []
    rates: Counter = Counter()
    channels: Counter = Counter()
    errors = 0
    with quiet_native_stderr():
        for source in discover(folder):
            if source.problem is not None:
                errors += 1
                continue
            try:
                with open_audio(source.path) as reader:
                    info = reader.info
            except DecodeError:
                errors += 1
                continue
            durations.append(info.duration or 0.0)
            rates[info.sample_rate] += 1
            channels[info.channels] += 1
    stats = _summary(str(where), "audio", durations)
    stats.update(
        {
            "files": len(durations),
            "sample_rates": _counts(rates),
            "channels": _counts(channels),
            "disk_bytes": _disk_bytes(where),
            "errors": errors,
            "invalid_entries": 0,
            "histogram": duration_histogram(durations, bins),
        }
    )
    return stats


def collect_stats(path: str | os.PathLike[str] | Location, bins: int = 20) -> dict:
    """Counts, hours, duration spread, rates and channels, disk size, errors, histogram;
    ``kind`` says what PATH is (convert, shard, format, manifest, audio)."""
    where = location(path)
    if not where.exists():
        raise SourceError(f"{where}: no such file or folder")
    if is_manifest(where):
        folder = where.parent
        if folder.join("format.json").exists() and where.name == "manifest.jsonl":
            return _format_folder(folder, bins, str(where))[0]
        return _manifest(where, folder, str(where), bins)
    if where.is_file():
        raise SourceError(f"{where}: not a folder or a .jsonl manifest")
    if where.join("format.json").exists():
        return _format_folder(where, bins)[0]
    if where.join("manifest.jsonl").exists():
        return _manifest(where.join("manifest.jsonl"), where, str(where), bins)
    names, unfinished = _format_names(where)
    if names or unfinished:
        return _shard_root(where, names, unfinished, bins)
    return _audio_folder(where, bins)


def _seconds(value: float, decimals: int = 2) -> str:
    """``value`` with at least ``decimals`` decimals, more when it needs them (up to 6)."""
    while decimals < 6 and round(value, decimals) != value:
        decimals += 1
    return f"{value:.{decimals}f}"


def _decimals(step: float) -> int:
    """The decimals that print every multiple of ``step`` exactly."""
    return next(d for d in range(10) if math.isclose(round(step, d), step, abs_tol=1e-12))


def _channels(counts: dict[str, int]) -> str:
    names = {"1": "mono", "2": "stereo", UNKNOWN: "channels unknown"}
    return ", ".join(f"{names.get(k, f'{k} channels')}: {v}" for k, v in counts.items()) or "none"


def _rates(counts: dict[str, int]) -> str:
    return (
        ", ".join(
            f"{k} Hz: {v}" if k != UNKNOWN else f"rate unknown: {v}" for k, v in counts.items()
        )
        or "none"
    )


def _describe_item(item: dict) -> str:
    """``2.00 s segments (32000 samples, last pad): audio int16 [32000], mel ...``."""
    if item["samples"] is None:
        length = "whole inputs, any length"
    elif item["last"] == "keep":
        length = f"segments up to {item['seconds']:.2f} s ({item['samples']} samples, last keep)"
    else:
        length = (
            f"{item['seconds']:.2f} s segments ({item['samples']} samples, last {item['last']})"
        )
    arrays = []
    if item["audio"]:
        audio = item["audio"]
        arrays.append(f"audio {audio['dtype']} [{audio['shape'][0] or 'samples'}]")
        if audio.get("codec"):
            arrays[-1] += f" as {audio['codec']}"
    if item["mel"]:
        n_mels, frames = item["mel"]["shape"]
        arrays.append(f"mel {item['mel']['dtype']} [{n_mels}, {frames or 'frames'}]")
    return f"{length}: {', '.join(arrays)}"


def _histogram_lines(histogram: dict, width: int) -> list[str]:
    counts, edges = histogram["counts"], histogram["edges"]
    if not counts:
        return []
    if len(counts) == 1 and edges[0] == edges[1]:
        n = counts[0]
        return [
            f"  duration histogram: {'all ' if n > 1 else ''}{n} item{'s' if n > 1 else ''} "
            f"{_seconds(edges[0])} s"
        ]
    step = edges[1] - edges[0]
    d = _decimals(step)
    w = max(len(f"{e:.{d}f}") for e in edges)
    lines = [f"  duration histogram (seconds: items, bins of {step:.{d}f} s)"]
    top = max(counts) or 1
    for count, lo, hi in zip(counts, edges, edges[1:], strict=False):
        bar = "█" * int(round(width * count / top))
        lines.append(f"  {lo:>{w}.{d}f}-{hi:<{w}.{d}f} {count:6d} {bar}")
    return lines


def _padding(stats: dict) -> str:
    """A note that padded items count their real audio only."""
    items = [stats.get("item")] + [f["item"] for f in stats.get("formats", [])]
    padded = any(i and i["samples"] is not None and i["last"] == "pad" for i in items)
    return " (before padding)" if padded else ""


KIND_NAMES = {
    "convert": "prep convert output",
    "format": "prep shard format",
    "manifest": "manifest",
    "audio": "audio files",
}


def render_stats(stats: dict, width: int = 50) -> str:
    """The stats as terminal text, with a horizontal duration histogram."""
    kind = stats.get("kind", "")
    if kind == "shard":
        heading = f"prep shard output, {len(stats['formats'])} formats"
    elif kind == "format":
        heading = f"prep shard format {stats['format']}"
    else:
        heading = KIND_NAMES.get(kind, kind)
    items = f"{stats['items']}"
    if stats.get("files") not in (None, stats["items"]):
        items += f" (utterances of {stats['files']} files)"
    lines = [
        f"{stats['path']}  ({heading})",
        f"  items        {items}",
        f"  audio        {stats['hours']:.3f} h{_padding(stats)}",
        f"  duration     min {stats['duration_min']:.2f} s, median "
        f"{stats['duration_median']:.2f} s, max {stats['duration_max']:.2f} s",
    ]
    if kind == "convert":
        sources = stats["sources"]
        formats = ", ".join(f"{k}: {v}" for k, v in sources["formats"].items())
        lines += [
            f"  converted    {_rates(stats['sample_rates'])}; {_channels(stats['channels'])}",
            f"  sources      {_rates(sources['sample_rates'])}; "
            f"{_channels(sources['channels'])}; {formats}",
        ]
    else:
        lines.append(f"  sample rates {_rates(stats['sample_rates'])}")
        if kind not in ("format", "shard"):  # prep shard writes mono
            lines.append(f"  channels     {_channels(stats['channels'])}")
    if kind == "format":
        lines.append(f"  item         {_describe_item(stats['item'])}")
    lines += [
        f"  disk         {stats['disk_bytes'] / 1e6:.1f} MB",
        f"  errors       {stats['errors']}",
    ]
    if stats.get("invalid_entries"):
        lines.append(f"  invalid      {stats['invalid_entries']} entries without a usable duration")
    if kind == "shard":
        lines.append("  formats")
        name_width = max((len(f["path"]) for f in stats["formats"]), default=0)
        for fmt in stats["formats"]:
            lines.append(
                f"    {fmt['path']:<{name_width}}  {fmt['items']:>6} items  {fmt['hours']:8.3f} h"
                f"  {fmt['disk_bytes'] / 1e6:8.1f} MB  {_describe_item(fmt['item'])}"
            )
        for name in stats["unfinished_formats"]:
            lines.append(
                f"    {name:<{name_width}}  unfinished: no format.json (run prep shard again)"
            )
    lines += _histogram_lines(stats["histogram"], width)
    return "\n".join(lines)
