"""The local file system: atomic writes by temporary name and rename, an appended journal."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from manifests import (
    Entry,
    ManifestAppender,
    atomic_path,
    iter_journal,
    iter_manifest,
    naming,
    write_manifest,
)
from manifests import JournalFollower as FileFollower
from prep.storage.base import Journal, Location, Stat, Written


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class LocalLocation(Location):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def local_path(self) -> Path:
        return self.path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent(self) -> LocalLocation:
        return LocalLocation(self.path.parent)

    def join(self, rel: str) -> LocalLocation:
        return LocalLocation(self.path / rel)

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def is_file(self) -> bool:
        return self.path.is_file()

    def within(self, other: Location) -> bool:
        if not isinstance(other, LocalLocation):
            return False
        inner, outer = self.path.resolve(), other.path.resolve()
        return inner == outer or outer in inner.parents

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def decoder_input(self) -> Path:
        return self.path

    def write_bytes(self, data: bytes) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(data)

    @contextlib.contextmanager
    def open_write(self) -> Iterator[BinaryIO]:
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            yield fh

    @contextlib.contextmanager
    def writing(self) -> Iterator[Written]:
        with atomic_path(self.path) as tmp:
            written = Written(tmp)
            yield written
            written.sha256, written.size = file_digest(tmp), tmp.stat().st_size

    def stat(self) -> Stat:
        st = os.stat(self.path)
        return Stat(st.st_size, st.st_mtime_ns)

    def list_files(self) -> dict[str, int]:
        found = {}
        for dirpath, _dirs, files in os.walk(self.path):
            for name in files:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    found[path.relative_to(self.path).as_posix()] = path.stat().st_size
        return found

    def size_lookup(self) -> Callable[[str], int | None]:
        """One stat per name asked: no walk of a large OUT."""

        def size(rel: str) -> int | None:
            try:
                return (self.path / rel).stat().st_size
            except OSError:
                return None

        return size

    def remove(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        else:
            self.path.unlink(missing_ok=True)

    def iter_manifest(self) -> Iterator[Entry]:
        if self.path.exists():
            yield from iter_manifest(self.path)

    def write_manifest(self, entries: Iterable[Entry]) -> int:
        return write_manifest(self.path, entries)

    def journal(self, stem: str) -> FileJournal:
        return FileJournal(self.path / f"{stem}.journal.jsonl")

    def scratch(self, name: str) -> Path:
        """``name`` in this folder, emptied: workers sharing this folder see it."""
        folder = self.path / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder

    def hold(self):
        from prep.runlock import hold_folder

        return hold_folder(self.path)


class FileJournal(Journal):
    """One file each worker appends its records to as they come (one flushed line, which
    O_APPEND keeps whole between processes): a killed run's work is not lost."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def writer(self, batch: str) -> ManifestAppender:
        return ManifestAppender(self.path)

    def records(self) -> Iterator[Entry]:
        return iter_journal(self.path)

    def follower(self) -> FileFollower:
        return FileFollower(self.path)

    def clear(self) -> None:
        with naming(self.path):
            self.path.unlink(missing_ok=True)
