"""Atomic file creation: write under a temporary name in the same folder, then rename.

A process killed at any moment leaves either the complete file or no file at the final
name. Leftover temporaries carry the ``.partial`` suffix so a rerun can sweep them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
NAME_MAX = 255
"""Bytes in one file name on Linux and macOS file systems."""
_TAG_CHARS = 8


def partial_name(path: Path) -> Path:
    """A hidden temporary name beside ``path``: ``.NAME.TAG.partial``, within NAME_MAX.

    TAG hashes the name with the process and thread, so two writers of one path never
    share a temporary, and the same writer always picks the same one. A name too long to
    take the 18 added bytes is cut (on a character boundary): the tag keeps it distinct.
    """
    name = os.fsencode(path.name)
    writer = f"{os.getpid()}:{threading.get_ident()}".encode()
    tag = hashlib.sha1(name + b"\0" + writer).hexdigest()[:_TAG_CHARS]
    room = NAME_MAX - len(f"..{tag}{PARTIAL_SUFFIX}")
    if len(name) > room:
        name = _cut_utf8(name, room)
    return path.with_name(f".{os.fsdecode(name)}.{tag}{PARTIAL_SUFFIX}")


def _cut_utf8(name: bytes, size: int) -> bytes:
    """The first ``size`` bytes of a name, less a UTF-8 character they would split."""
    cut = name[:size]
    start = len(cut)
    while start > 0 and cut[start - 1] & 0xC0 == 0x80:  # continuation bytes
        start -= 1
    if start > 0 and cut[start - 1] >= 0xC0:  # the lead byte of the last character
        lead = cut[start - 1]
        length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if start - 1 + length > len(cut):
            cut = cut[: start - 1]
    return cut


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Give an OS error raised without a file name (a write on a full disk) ``path``, so the
    one line that reports it says which file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    try:
        with naming(final):
            yield tmp
            os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove_partials(root: str | os.PathLike[str]) -> int:
    """Delete temporaries left under ``root`` by a killed run; return how many."""
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed
