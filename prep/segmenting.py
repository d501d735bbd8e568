"""Cutting a file into items: durations on the command line, the segment plan, item keys."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

LAST_POLICIES = ("pad", "drop", "keep")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "ms": 1e-3, "samples": None}
DURATION_FORMS = "5s, 2.5s, 500ms or 80000samples"
MIN_SECONDS = 0.01  # shorter items hold no speech and no full mel frame


def parse_duration(text: str, sample_rate: int) -> int:
    """``5s``, ``2.5s``, ``500ms`` or ``80000samples`` as a number of samples.

    The unit is required: a bare ``5`` was once five samples, silently."""
    match = _DURATION.match(str(text))
    if not match or match.group(2).lower() not in _UNITS:
        if match and not match.group(2):
            raise ValueError(f"{text!r} has no unit (write {DURATION_FORMS})")
        raise ValueError(f"{text!r} is not a duration (write {DURATION_FORMS})")
    value, seconds = float(match.group(1)), _UNITS[match.group(2).lower()]
    if seconds is None and not value.is_integer():
        raise ValueError(f"{text!r}: a number of samples must be whole")
    result = int(value) if seconds is None else int(round(value * seconds * sample_rate))
    if result < min_samples(sample_rate):
        raise ValueError(f"{text!r} is shorter than {MIN_SECONDS * 1000:g} ms")
    return result


def min_samples(sample_rate: int) -> int:
    """The shortest segment or hop allowed at ``sample_rate``: 10 ms."""
    return max(1, math.ceil(MIN_SECONDS * sample_rate))


@dataclass(frozen=True)
class Span:
    """One item of a file: where it starts and how many real samples it has."""

    start: int
    length: int


def plan_spans(
    num_samples: int, segment: int | None, hop: int | None, last: str, min_last: float = 0.0
) -> list[Span]:
    """The items a file of ``num_samples`` yields.

    Without ``segment`` the whole file is one item. Otherwise full segments start every
    ``hop`` samples; the samples from the next start to the end (if any: a hop longer
    than the segment leaves gaps, and the end may fall in one) are kept short (``keep``),
    dropped (``drop``), or kept to be zero-padded (``pad``), unless they are fewer than
    ``min_last`` of a segment. No item is empty. With ``hop == segment`` and ``keep``
    every sample lands in exactly one item, in order.
    """
    if num_samples <= 0:
        return []
    if segment is None:
        return [Span(0, num_samples)]
    hop = hop or segment
    spans = []
    start = 0
    while start + segment <= num_samples:
        spans.append(Span(start, segment))
        start += hop
    covered = spans[-1].start + segment if spans else 0
    tail = num_samples - start  # <= 0 when hop > segment left the end in a gap
    if covered < num_samples and tail > 0 and last != "drop" and tail >= min_last * segment:
        spans.append(Span(start, tail))
    return spans


def item_key(source: str, index: int) -> str:
    """A stable, unique key with no dots or path separators (WebDataset cuts at a dot).

    A readable slug of the source path, a short hash of the full path (so two paths that
    slug alike stay apart), and the item's index within the file.
    """
    stem = PurePosixPath(source).with_suffix("").as_posix()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[-48:] or "item"
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}-{index:05d}"


def key_folder(key: str) -> str:
    """A subfolder for per-item files: 256 buckets, so no folder grows past a few thousand."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:2]
