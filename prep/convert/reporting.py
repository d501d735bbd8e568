"""Errors, debug notes and progress told as files finish, each source once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from manifests import Entry
from prep.convert.batch import NOTE, NOTE_OF
from prep.convert.outcomes import Outcome
from prep.progress import Progress, following
from prep.storage import Journal

log = logging.getLogger("prep.convert")


class Reporter:
    """Logs each source's failure or skip once (and, with ``-v``, what was decided for it)
    and moves the progress line: as the journal says files finished, and at the end for
    what it did not say (object storage)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.reported: set[str] = set()
        self.noted: set[str] = set()

    def report(self, records: list[Entry]) -> None:
        files = failed = 0
        seconds = 0.0
        for record in records:
            if NOTE_OF in record:
                if record[NOTE_OF] not in self.noted:
                    self.noted.add(record[NOTE_OF])
                    log.debug("%s: %s", record[NOTE_OF], record[NOTE])
                continue
            if record.get("source") in self.reported:
                continue
            self.reported.add(record.get("source"))
            files += 1
            if record.get("status") == Outcome.FAILED:
                failed += 1
                log.error("error: %s: %s", record["source"], record["reason"])
            elif record.get("status") == Outcome.SKIPPED:
                log.info("skipped: %s: %s", record["source"], record["reason"])
            else:
                seconds += record.get("duration") or 0.0
        if self.progress and files:
            self.progress.advance(files, seconds, failed)

    def tick(self) -> None:
        if self.progress:
            self.progress.tick()


@contextlib.contextmanager
def reporting(journal: Journal, reporter: Reporter) -> Iterator[None]:
    """Follow the journal the workers write to: errors are logged and the progress line
    moves as files finish, not when the whole run returns."""
    follower = journal.follower()

    def poll() -> None:
        reporter.report(follower.read_new())
        reporter.tick()

    with following(poll):
        yield
