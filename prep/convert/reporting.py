"""Errors and progress told as files finish, each source once."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from manifests import Entry
from prep.convert.outcomes import Outcome
from prep.storage import Journal

log = logging.getLogger("prep.convert")


class Reporter:
    """Logs each source's failure or skip once and moves the progress line: as the journal
    says files finished, and at the end for what it did not say (object storage)."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.reported: set[str] = set()

    def report(self, records: list[Entry]) -> None:
        records = [r for r in records if r.get("source") not in self.reported]
        for record in records:
            self.reported.add(record.get("source"))
            if record.get("status") == Outcome.FAILED:
                log.error("error: %s: %s", record["source"], record["reason"])
            elif record.get("status") == Outcome.SKIPPED:
                log.info("skipped: %s: %s", record["source"], record["reason"])
        if self.progress and records:
            self.progress(len(records))


@contextlib.contextmanager
def reporting(journal: Journal, reporter: Reporter) -> Iterator[None]:
    """Follow the journal the workers write to: errors are logged and the progress line
    moves as files finish, not when the whole run returns."""
    follower = journal.follower()
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(0.25):
            reporter.report(follower.read_new())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        reporter.report(follower.read_new())
