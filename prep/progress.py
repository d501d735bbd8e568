"""A run's progress: files done of the total, hours of audio and failures so far.

On a terminal, one line redrawn in place; elsewhere (a batch job writing to a log file) one
``prep`` log line every ``every`` seconds, so a long run shows life. It is fed in the
parent process only, from what the workers journal as they finish; :func:`following` is
the thread that reads that journal and keeps the line's clock moving in between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

log = logging.getLogger("prep")

BAR = 20
"""Characters of the bar on a terminal."""
REDRAW_SECONDS = 0.1
"""A terminal line is redrawn at most this often (a run of short files finishes hundreds
of files a second)."""
FOLLOW_SECONDS = 0.25
"""How often :func:`following` reads the journal and moves the clock."""


def audio_span(seconds: float, exact: bool = False) -> str:
    """Audio time at a scale that does not round a small set to nothing; ``exact`` adds
    a digit to seconds and hours (a summary, against a progress line)."""
    if seconds < 60:
        return f"{seconds:.{int(exact)}f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.{1 + int(exact)}f} h"


def clock_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Files done of ``total``, their audio and failures, shown one of two ways.

    ``terminal``: one line on stderr redrawn in place (cleared before each log line, so
    messages never run into it). Otherwise one log line every ``every`` seconds (0: none),
    and a last one at :meth:`finish` when any was logged. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        command: str,
        verb: str,
        noun: str = "files",
        *,
        terminal: bool = False,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.command, self.verb, self.noun = command, verb, noun
        self.terminal, self.every, self.clock = terminal, every, clock
        self._stream = stream
        self.total: int | None = None
        self.done = 0
        self.seconds = 0.0
        self.failed = 0
        self.started = clock()
        self._last = self.started  # the last log line, or the last redraw
        self._logged = 0
        self._logged_counts: tuple[str, ...] = ()
        self._drawn = False
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO:
        """Looked up at each write: :func:`loaders.audio.quiet.quiet_native_stderr` points
        ``sys.stderr`` elsewhere while fd 2 is redirected."""
        return self._stream or sys.stderr

    def start(self, total: int) -> None:
        """The number of files the run will report."""
        with self._lock:
            self.total = total
            self._show(force=self.terminal)

    def advance(self, files: int = 0, seconds: float = 0.0, failed: int = 0) -> None:
        """``files`` more finished (``failed`` of them failed), holding ``seconds`` of audio."""
        with self._lock:
            self.done += files
            self.seconds += seconds
            self.failed += failed
            self._show()

    def tick(self) -> None:
        """Nothing finished, time went by: the elapsed time or the next log line is due."""
        with self._lock:
            self._show()

    def finish(self) -> None:
        """The last state: the line left complete on a terminal; a last log line after
        periodic ones."""
        with self._lock:
            if self.terminal and self.total is not None:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False
            elif not self.terminal and self._logged and self._logged_counts != self.counts():
                log.info(self.log_line())

    def counts(self) -> tuple[str, str, str]:
        done = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        return f"{done} {self.noun}", audio_span(self.seconds), f"{self.failed} failed"

    def log_line(self) -> str:
        """``convert: 120/300 files, 1.4 h, 2 failed, 0:01:30 elapsed``"""
        elapsed = clock_time(self.clock() - self.started)
        return f"{self.command}: {', '.join(self.counts())}, {elapsed} elapsed"

    def terminal_line(self, width: int = 1000) -> str:
        """``converting  120/300 files  1.4 h  2 failed  [########            ]  40%  0:00:12 left``

        At most ``width - 1`` characters (a wrapped line could not be redrawn in place):
        the bar gets narrower, then goes."""
        elapsed = self.clock() - self.started
        head = "  ".join([self.verb, *self.counts()])
        if self.total and 0 < self.done < self.total:
            tail = f"{clock_time(elapsed * (self.total - self.done) / self.done)} left"
        else:
            tail = clock_time(elapsed)
        if self.total:
            fraction = min(1.0, self.done / self.total)
            tail = f"{fraction * 100:3.0f}%  {tail}"
            bar = min(BAR, width - 1 - len(head) - len(tail) - 6)
            if bar >= 5:
                filled = int(fraction * bar)
                tail = f"[{'#' * filled}{' ' * (bar - filled)}] {tail}"
        return f"{head}  {tail}"[: width - 1]

    def _show(self, force: bool = False) -> None:
        now = self.clock()
        if self.terminal:
            if force or now - self._last >= REDRAW_SECONDS:
                self._last = now
                self._draw()
        elif self.every > 0 and now - self._last >= self.every:
            self._last = now
            self._logged += 1
            self._logged_counts = self.counts()
            log.info(self.log_line())

    def _draw(self) -> None:
        line = self.terminal_line(_columns(self.stream))
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the line (a log line is about to be written); the next redraw restores it."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    @contextlib.contextmanager
    def shown(self) -> Iterator[Progress]:
        """While the run goes: on a terminal each log line first clears the progress line;
        the last state is shown at the end (:meth:`finish`)."""
        handlers = list(logging.getLogger().handlers) if self.terminal else []
        for handler in handlers:
            handler.addFilter(self._clear_for_record)
        try:
            yield self
        finally:
            for handler in handlers:
                handler.removeFilter(self._clear_for_record)
            self.finish()

    def _clear_for_record(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


@contextlib.contextmanager
def following(poll: Callable[[], None], every: float = FOLLOW_SECONDS) -> Iterator[None]:
    """Call ``poll`` every ``every`` seconds in a thread while the block runs, and once more
    after it: a run's journal read as files finish, not when the whole run returns."""
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(every):
            poll()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()
