"""Where a run may write: checked before any work, by every command that writes an OUT.

A run clears and rewrites what it owns under OUT, so OUT must not hold its own inputs,
and it must not sit inside them (a later run over SRC would pick the outputs up as input).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from manifests import is_url
from prep.errors import UsageError


def _prefix(url: Path | str) -> str:
    return str(url).rstrip("/") + "/"


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_out(out: Path | str, root: Path | str, inputs: Iterable[Path | str] = ()) -> None:
    """Refuse OUT that is SRC's ``root``, inside it, or holds it (symlinks resolved), OUT
    that holds any of the ``inputs`` folders, and OUT that is a file or cannot be written."""
    if is_url(out) and is_url(root):
        out_url, src_url = _prefix(out), _prefix(root)
        if out_url.startswith(src_url):
            raise UsageError(f"OUT {out} is inside the source prefix {root}; choose another")
        if src_url.startswith(out_url):
            raise UsageError(f"the source prefix {root} is inside OUT {out}; choose another")
    if is_url(out):
        return
    out_resolved = Path(out).resolve()
    if not is_url(root) and _within(out_resolved, Path(root).resolve()):
        raise UsageError(
            f"OUT {out} is inside the source folder {Path(root).resolve()}; choose another folder"
        )
    for folder in (root, *inputs):
        if not is_url(folder) and _within(Path(folder).resolve(), out_resolved):
            raise UsageError(
                f"the source folder {Path(folder).resolve()} is inside OUT {out}; a run "
                "rewrites OUT: choose another folder"
            )
    check_writable(Path(out))


def check_writable(out: Path) -> None:
    """OUT, or the nearest folder it would be made in, is a folder this process can write."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == out and not out.is_dir():
        raise UsageError(f"OUT {out} is a file, not a folder")
    if not existing.is_dir():
        raise UsageError(f"OUT {out} cannot be made: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"OUT {out} cannot be written: {existing} is read-only for this user")
