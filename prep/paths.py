"""Where a run may write: checked before any work, by every command that writes an OUT.

A run clears and rewrites what it owns under OUT, so OUT must not hold its own inputs,
and it must not sit inside them (a later run over SRC would pick the outputs up as input).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prep.errors import UsageError
from prep.storage import Location, location


def check_out(
    out: Path | str | Location,
    root: Path | str | Location,
    inputs: Iterable[Path | str | Location] = (),
) -> None:
    """Refuse OUT that is SRC's ``root`` (a folder, or a manifest file), inside it, or holds it
    (symlinks resolved), OUT inside or holding any of the ``inputs`` folders (those of the
    audio a manifest lists), and OUT that is a file or cannot be written.
    Locations on different storage never overlap."""
    out, root = location(out), location(root)
    inputs = [location(folder) for folder in inputs]
    for folder in (root, *inputs):
        if out.within(folder):
            raise UsageError(
                f"OUT {out} is inside the source {folder.noun} {_shown(folder)}; "
                f"choose another {out.noun}"
            )
    for folder in (root, *inputs):
        if folder.within(out):
            raise UsageError(
                f"the source {folder.noun} {_shown(folder)} is inside OUT {out}; a run "
                f"rewrites OUT: choose another {out.noun}"
            )
    if out.local_path is not None:  # object storage tells only when written
        check_writable(out.local_path)


def _shown(where: Location) -> str:
    """A local folder by its resolved path (what the check compared), a prefix as given."""
    return str(where.local_path.resolve()) if where.local_path is not None else str(where)


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
