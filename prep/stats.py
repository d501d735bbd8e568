"""``prep stats``: what a folder or manifest holds, with a duration histogram.

The XLSR fine-tuning log chose its length cut-off from such a histogram; this prints one.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from loaders.audio.errors import DecodeError
from loaders.audio.quiet import quiet_native_stderr
from loaders.audio.registry import open_audio
from manifests import iter_manifest
from prep.sources import SourceError, discover, is_manifest


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def _is_duration(value: object) -> bool:
    """A manifest duration that can be counted: a finite, non-negative number."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def collect_stats(path: str | os.PathLike[str], bins: int = 20) -> dict:
    """Counts, hours, duration spread, rates and channels seen, disk size, errors."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    manifest = path / "manifest.jsonl" if path.is_dir() else path
    folder = manifest.parent
    durations: list[float] = []
    rates: Counter = Counter()
    channels: Counter = Counter()
    errors = invalid = 0
    if manifest.exists() and (path.is_dir() or is_manifest(path)):
        fmt = folder / "format.json"
        default_rate = json.loads(fmt.read_text())["sample_rate"] if fmt.exists() else None
        for entry in iter_manifest(manifest):
            duration = entry.get("duration", 0.0)
            if not _is_duration(duration):
                invalid += 1  # counted, never in the hours or the histogram
                continue
            durations.append(float(duration))
            rates[entry.get("sample_rate", default_rate)] += 1
            channels[entry.get("channels", entry.get("source_channels", 1))] += 1
        # a prep shard format folder keeps its run's errors one level up
        if fmt.exists():
            errors = _count_lines(folder.parent / "errors.jsonl")
        else:
            errors = _count_lines(folder / "errors.jsonl")
    elif path.is_dir():
        with quiet_native_stderr():
            for source in discover(path):
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
    else:
        raise SourceError(f"{path}: not a folder or a .jsonl manifest")
    counts, edges = np.histogram(durations, bins=bins) if durations else ([], [])
    return {
        "path": str(path),
        "items": len(durations),
        "hours": sum(durations) / 3600,
        "duration_min": min(durations, default=0.0),
        "duration_median": statistics.median(durations) if durations else 0.0,
        "duration_max": max(durations, default=0.0),
        "sample_rates": {str(k): v for k, v in sorted(rates.items(), key=lambda kv: str(kv[0]))},
        "channels": {str(k): v for k, v in sorted(channels.items(), key=lambda kv: str(kv[0]))},
        "disk_bytes": _disk_bytes(folder if path.is_file() else path),
        "errors": errors,
        "invalid_entries": invalid,
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def render_stats(stats: dict, width: int = 50) -> str:
    """The stats as terminal text, with a horizontal duration histogram."""
    lines = [
        f"{stats['path']}",
        f"  items        {stats['items']}",
        f"  audio        {stats['hours']:.3f} h",
        f"  duration     min {stats['duration_min']:.2f} s, median "
        f"{stats['duration_median']:.2f} s, max {stats['duration_max']:.2f} s",
        f"  sample rates {', '.join(f'{k} Hz: {v}' for k, v in stats['sample_rates'].items())}",
        f"  channels     {', '.join(f'{k}: {v}' for k, v in stats['channels'].items())}",
        f"  disk         {stats['disk_bytes'] / 1e6:.1f} MB",
        f"  errors       {stats['errors']}",
    ]
    if stats.get("invalid_entries"):
        lines.append(f"  invalid      {stats['invalid_entries']} entries without a usable duration")
    counts, edges = stats["histogram"]["counts"], stats["histogram"]["edges"]
    if counts:
        lines.append("  duration histogram (seconds: items)")
        top = max(counts) or 1
        for count, lo, hi in zip(counts, edges, edges[1:], strict=False):
            bar = "█" * int(round(width * count / top))
            lines.append(f"  {lo:8.2f}-{hi:<8.2f} {count:6d} {bar}")
    return "\n".join(lines)
