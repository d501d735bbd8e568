"""Manifest lines as utterances: which span of its file one line names.

NeMo and Lhotse list a long recording once per utterance, each line with its own
``offset``/``duration`` (seconds) and transcript. Every line is one item: convert writes
one manifest entry per line pointing into the converted file, shard cuts items from
that line's span only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from manifests import Entry

SPAN_TOLERANCE_SECONDS = 0.010
"""Manifests round durations: a span may end this far past the file (it is clamped), and
a line starting at 0 that ends this close to the file's end names the whole file."""


class SpanError(ValueError):
    """A manifest line names no audio of its file (negative, past the end, not a number)."""


@dataclass(frozen=True)
class Span:
    """Where a line's audio lies in its file, in samples at the file's output rate."""

    start: int
    length: int


def _seconds(fields: Entry, key: str) -> float | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpanError(f"{key} {value!r} is not a number of seconds")
    return float(value)


def names_whole_file(fields: Entry) -> bool:
    """Whether a line can only mean the whole file (no offset, or offset 0), before the
    file's length is known."""
    offset = fields.get("offset")
    return offset is None or offset == 0


def line_span(fields: Entry, file_samples: int, sample_rate: int) -> Span | None:
    """The span a manifest line names in a file of ``file_samples``; None for the whole file.

    Raises :class:`SpanError` when the line names nothing inside the file.
    """
    offset = _seconds(fields, "offset") or 0.0
    duration = _seconds(fields, "duration")
    if offset < 0:
        raise SpanError(f"offset {offset:g} s is negative")
    if duration is not None and duration <= 0:
        raise SpanError(f"duration {duration:g} s is not positive")
    start = round(offset * sample_rate)
    end = file_samples if duration is None else round((offset + duration) * sample_rate)
    slack = round(SPAN_TOLERANCE_SECONDS * sample_rate)
    length_s = file_samples / sample_rate
    if start >= file_samples:
        raise SpanError(f"offset {offset:g} s is past the end of the file ({length_s:.3f} s)")
    if end > file_samples + slack:
        raise SpanError(
            f"offset {offset:g} s + duration {duration:g} s ends after the file ({length_s:.3f} s)"
        )
    end = min(end, file_samples)
    if start == 0 and end >= file_samples - slack:
        return None
    return Span(start, end - start)
