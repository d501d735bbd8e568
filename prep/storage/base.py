"""The interface every storage kind implements (:class:`Location`), and what it returns."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, NamedTuple

from manifests import Entry, dumps_entry, parse_manifest_lines


class Stat(NamedTuple):
    """What a rerun compares to tell a changed input: its size and modification time."""

    size: int
    mtime_ns: int


class Written:
    """A file being written by :meth:`Location.writing`: ``target`` to write into (a
    temporary path or an in-memory buffer); ``sha256`` and ``size`` once it is stored."""

    def __init__(self, target: Path | BinaryIO) -> None:
        self.target = target
        self.sha256 = ""
        self.size = 0


class JournalFollower(ABC):
    @abstractmethod
    def read_new(self) -> list[Entry]:
        """The records written since the last call."""


class Journal(ABC):
    """Records of finished work, written as it finishes, so a killed run resumes."""

    @abstractmethod
    def writer(self, batch: str) -> AbstractContextManager:
        """Something to ``append(record)`` to for one batch of work named ``batch``."""

    @abstractmethod
    def records(self) -> Iterator[Entry]:
        """Every record left by earlier runs (a torn last line is skipped)."""

    @abstractmethod
    def follower(self) -> JournalFollower:
        """Records as they are written, from now on."""

    @abstractmethod
    def clear(self) -> None:
        """Remove the journal (the run's manifests now hold what it said)."""


class Location(ABC):
    """A file or folder on some storage: a local path or an object URL."""

    path: Path | str
    """The native form: a :class:`Path`, or the URL of an object or prefix."""

    noun: str = "folder"
    """What a folder is called here, for messages (``folder``, ``prefix``)."""

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    @property
    def local_path(self) -> Path | None:
        """The file-system path, for what needs one (locks, HDF5, writing in place);
        None on object storage."""
        return None

    @property
    @abstractmethod
    def name(self) -> str:
        """The last part of the path."""

    @property
    @abstractmethod
    def parent(self) -> Location: ...

    @abstractmethod
    def join(self, rel: str) -> Location:
        """``rel`` (a ``/``-separated relative name) under this folder."""

    def decoder_input(self) -> Path | bytes:
        """What a decoder opens: an object's bytes fetched whole into memory (a 2-hour
        mp3 is about 100 MB); a local file by its path (it seeks)."""
        return self.read_bytes()

    @abstractmethod
    def exists(self) -> bool:
        """Whether anything is at this name (a dangling symlink counts)."""

    @abstractmethod
    def is_file(self) -> bool: ...

    @abstractmethod
    def within(self, other: Location) -> bool:
        """Whether this is ``other`` or under it (never across storage kinds)."""

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Several small files under this folder by relative name."""
        return {name: self.join(name).read_bytes() for name in names}

    @abstractmethod
    def read_bytes(self) -> bytes:
        """The whole content; FileNotFoundError naming this location when there is none."""

    @abstractmethod
    def write_bytes(self, data: bytes) -> None:
        """Store ``data`` whole or not at all."""

    def iter_manifest(self) -> Iterator[Entry]:
        """The entries of a JSONL manifest here; none when there is no manifest."""
        try:
            text = self.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return
        yield from parse_manifest_lines(text.splitlines(), str(self))

    def write_manifest(self, entries: Iterable[Entry]) -> int:
        """Store a JSONL manifest whole or not at all; return how many entries."""
        lines = [dumps_entry(entry) + "\n" for entry in entries]
        self.write_bytes("".join(lines).encode("utf-8"))
        return len(lines)

    @abstractmethod
    def open_write(self) -> AbstractContextManager[BinaryIO]:
        """A binary file to stream into, committed whole only when the block ends
        without an exception."""

    @abstractmethod
    def writing(self) -> AbstractContextManager[Written]:
        """A :class:`Written` whose target is committed whole when the block ends."""

    @abstractmethod
    def stat(self) -> Stat:
        """Size and mtime (OSError when there is nothing)."""

    def size_lookup(self) -> Callable[[str], int | None]:
        """The size of a file under this folder by relative name (None when absent)."""
        listing = self.list_files()
        return listing.get

    @abstractmethod
    def list_files(self) -> dict[str, int]:
        """Every file under this folder: its ``/``-separated relative name and size."""

    @abstractmethod
    def remove(self) -> None:
        """Delete this file or folder with all it holds, if present."""

    @abstractmethod
    def journal(self, stem: str) -> Journal:
        """The journal named ``stem`` in this folder."""

    def hold(self) -> AbstractContextManager[None]:
        """Hold this folder against other runs while the block runs. Object storage has
        no locks: there the caller's own care applies."""
        return contextlib.nullcontext()

    def scratch(self, name: str) -> Path:
        """An empty local folder for a run's intermediate files (removed by the caller)."""
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"audioprep-{name.strip('.')}-"))
