"""Silencing what C libraries (mpg123 via libsndfile) write straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_quiet_lock = threading.Lock()
_quiet_state: dict[str, int] = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Redirect the whole process's fd 2 to /dev/null while decoding.

    Threads share one redirection (the first in sets it up, the last out restores it),
    as in a Dask worker running several batches.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            sys.stderr.flush()
            _quiet_state["saved"] = os.dup(fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                os.dup2(_quiet_state["saved"], fd)
                os.close(_quiet_state["saved"])
