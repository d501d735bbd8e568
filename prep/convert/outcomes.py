"""What a run does with each source: the job, and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from manifests import Entry
from prep.sources import Source


class Outcome(StrEnum):
    """What became of one source in a run (recorded as ``status`` in the journal)."""

    CONVERTED = "converted"
    DONE = "done"
    """Complete and current from an earlier run: not converted again."""
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class FileResult:
    """The outcome of one source: converted (with its entry), skipped or failed (with why)."""

    rel: str
    status: Outcome
    entry: Entry | None = None
    reason: str | None = None
    note: str = ""
    """What was decided for it (decoder, parts, native stderr), for a ``-v`` debug line."""


@dataclass(frozen=True)
class Job:
    source: Source
    out_rel: str


class Skip(Exception):
    """A file left out on purpose (duration filters, too short): not an error."""
