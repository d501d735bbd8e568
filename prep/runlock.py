"""One run per OUT at a time, and no temporary file left behind by any of them.

Two runs writing into one OUT sweep each other's temporary files and interleave their
manifests. A run holds an exclusive ``flock`` on ``OUT/.prep.lock`` while it works; the
kernel drops the lock when the holder's last process dies (``kill -9`` included), so a
killed run never blocks the next. Holding OUT, a run sweeps the temporaries a killed run
left, and on its way out, however it ends, its own (a worker terminated mid-write).
The lock file stays: removing it would let a waiting run lock a file that a third run
no longer sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from manifests import remove_partials
from prep.errors import UsageError
from prep.storage import Location, location

LOCK_NAME = ".prep.lock"


def locked_out(out: Path | str | Location) -> contextlib.AbstractContextManager[None]:
    """Hold OUT for this run (:meth:`prep.storage.Location.hold`): a local folder is
    locked by :func:`hold_folder`; object storage has no locks."""
    return location(out).hold()


@contextlib.contextmanager
def hold_folder(out: Path) -> Iterator[None]:
    """Hold a local OUT for this run, free of temporaries before and after; refuse in
    one line while another run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(
                f"{out} is in use by another prep run (pid {holder}); "
                "wait for it to finish or choose another OUT"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_partials(out)
        try:
            yield
        finally:
            remove_partials(out)
            os.ftruncate(fd, 0)  # no pid left behind: two runs leave the same bytes
    finally:
        os.close(fd)
