"""Page-cache state for the benchmark: warm (read once before timing, the default) or
cold (``--cold``: each file's cached pages dropped before each timed run)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def _files(roots: Iterable[Path]) -> Iterable[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def warm(*roots: Path) -> None:
    """Read every file once so timed runs start from the page cache."""
    for path in _files(roots):
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def drop(*roots: Path) -> int:
    """Ask the kernel to drop these files' cached pages (``posix_fadvise`` DONTNEED).

    Needs no privileges; the kernel drops clean pages only, and may keep pages other
    processes hold mapped. Returns how many files were advised.
    """
    count = 0
    for path in _files(roots):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            count += 1
        finally:
            os.close(fd)
    return count


def prepare(cold: bool, *roots: Path) -> None:
    """Before a timed run: drop the files' pages when cold, read them when warm."""
    (drop if cold else warm)(*roots)


def describe(cold: bool) -> str:
    if cold:
        return (
            "cold: before each timed run the files' cached pages were dropped with "
            "posix_fadvise(DONTNEED), which needs no privileges but drops clean, "
            "unmapped pages only"
        )
    return "warm: every file was read once before timing"
