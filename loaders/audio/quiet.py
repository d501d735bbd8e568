"""Keeping what C libraries (mpg123 via libsndfile) write straight to file descriptor 2 off
the terminal, and handing it back per file for a debug line."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_CHATTER_KEEP = 1000
"""Characters of one file's native output kept for its debug line."""

_quiet_lock = threading.Lock()
_quiet_state: dict = {"depth": 0}


class NativeStderr:
    """What C code wrote to fd 2 while it was redirected (see :func:`quiet_native_stderr`)."""

    def __init__(self, capture: int | None) -> None:
        self._capture = capture

    def take(self) -> str:
        """What was written since the last call, on one line ("" when nothing).

        Threads decoding at once (a Dask worker's) share one capture, so a line may land
        on the file another thread was decoding at the time."""
        fd = self._capture
        if fd is None:
            return ""
        with _quiet_lock:
            size = os.fstat(fd).st_size
            if not size:
                return ""
            data = os.pread(fd, min(size, 4 * _CHATTER_KEEP), 0)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)  # fd 2 shares this offset: C writes restart at 0
        text = " | ".join(line.strip() for line in data.decode("utf-8", "replace").splitlines())
        text = " | ".join(part for part in text.split(" | ") if part)
        return text if len(text) <= _CHATTER_KEEP else text[:_CHATTER_KEEP] + "..."


_NO_CAPTURE = NativeStderr(None)


def _swap_python_streams(old: object, new: object) -> list[logging.StreamHandler]:
    """Point ``sys.stderr`` and every logging handler writing to ``old`` at ``new`` (one
    that looks ``sys.stderr`` up each time, as ``logging.lastResort``, follows by itself)."""
    swapped = []
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            settable = not isinstance(getattr(type(handler), "stream", None), property)
            if isinstance(handler, logging.StreamHandler) and settable and handler.stream is old:
                handler.setStream(new)
                swapped.append(handler)
    sys.stderr = new
    return swapped


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[NativeStderr]:
    """Send the whole process's fd 2 to a capture file while decoding; yield what reads it.

    Python's own writes (log lines, a progress line) still reach the real stderr: while the
    redirection holds, ``sys.stderr`` and the logging handlers that wrote to it write to a
    copy of the original fd 2. Threads share one redirection (the first in sets it up, the
    last out restores it), as in a Dask worker running several batches.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield _NO_CAPTURE
        return
    state = _quiet_state
    with _quiet_lock:
        if state["depth"] == 0:
            sys.stderr.flush()
            old_stream = sys.stderr
            saved = os.dup(fd)
            capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the last one out
            os.dup2(capture.fileno(), fd)
            encoding = getattr(old_stream, "encoding", None) or "utf-8"
            real = io.TextIOWrapper(
                io.FileIO(saved, "w", closefd=False),
                encoding=encoding,
                errors="backslashreplace",
                line_buffering=True,
                write_through=True,
            )
            state.update(
                fd=fd,
                saved=saved,
                capture=capture,
                old_stream=old_stream,
                real=real,
                handlers=_swap_python_streams(old_stream, real),
            )
        state["depth"] += 1
        native = NativeStderr(state["capture"].fileno())
    try:
        yield native
    finally:
        with _quiet_lock:
            state["depth"] -= 1
            if state["depth"] == 0:
                state["real"].flush()
                for handler in state["handlers"]:
                    handler.setStream(state["old_stream"])
                sys.stderr = state["old_stream"]
                os.dup2(state["saved"], state["fd"])
                os.close(state["saved"])
                state["capture"].close()
                for key in ("saved", "capture", "old_stream", "real", "handlers"):
                    del state[key]
