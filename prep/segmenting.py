"""Cutting a file into items: durations on the command line, the segment plan, item keys."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

LAST_POLICIES = ("pad", "drop", "keep")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|)\s*$")


def parse_duration(text: str, sample_rate: int) -> int:
    """``5s``, ``2.5s``, ``500ms`` or a plain number of samples, as a number of samples."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 5s, 2.5s, 500ms, 80000)")
    value, unit = float(match.group(1)), match.group(2)
    samples = value * sample_rate if unit == "s" else value * sample_rate / 1000 if unit else value
    if unit == "" and not value.is_integer():
        raise ValueError(f"{text!r}: a number of samples must be whole")
    result = int(round(samples))
    if result <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return result


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
    ``hop`` samples; a tail holding samples no full segment covers is kept short
    (``keep``), dropped (``drop``), or kept to be zero-padded (``pad``) unless it is
    shorter than ``min_last`` of a segment. With ``hop == segment`` and ``keep`` every
    sample lands in exactly one item, in order.
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
    if covered < num_samples and last != "drop":
        tail = num_samples - start
        if last == "keep" or tail >= min_last * segment:
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
