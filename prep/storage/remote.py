"""Object storage through fsspec: ``s3://bucket/prefix``, or any fsspec URL but ``file://``.

The S3 endpoint and credentials come from the usual AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``~/.aws``...), read by s3fs. An object is written with one PUT,
or a multipart upload completed only when whole, which S3 makes visible whole or not at
all: the remote counterpart of write-then-rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from manifests import Entry, parse_journal_lines
from prep.storage.base import Journal, JournalFollower, Location, Stat, Written


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (no protocol)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


class FsspecLocation(Location):
    noun = "prefix"

    def __init__(self, url: str) -> None:
        self.path = url.rstrip("/") if url.rstrip("/").partition("://")[2] else url

    def _fs(self) -> tuple[Any, str]:
        return filesystem(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> FsspecLocation:
        return FsspecLocation(self.path.rsplit("/", 1)[0])

    def join(self, rel: str) -> FsspecLocation:
        return FsspecLocation(f"{self.path.rstrip('/')}/{rel}")

    def exists(self) -> bool:
        fs, path = self._fs()
        return fs.exists(path)

    def is_file(self) -> bool:
        fs, path = self._fs()
        return fs.isfile(path)

    def within(self, other: Location) -> bool:
        if not isinstance(other, FsspecLocation):
            return False
        return (self.path.rstrip("/") + "/").startswith(other.path.rstrip("/") + "/")

    def read_bytes(self) -> bytes:
        fs, path = self._fs()
        try:
            return fs.cat_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(2, "no such object", self.path) from None

    def write_bytes(self, data: bytes) -> None:
        fs, path = self._fs()
        fs.pipe_file(path, data)

    @contextlib.contextmanager
    def open_write(self) -> Iterator[BinaryIO]:
        """A multipart upload, completed only on success."""
        fs, path = self._fs()
        fh = fs.open(path, "wb", autocommit=False)
        try:
            yield fh
            fh.close()
            fh.commit()
        except BaseException:
            fh.discard()
            raise

    @contextlib.contextmanager
    def writing(self) -> Iterator[Written]:
        """Encoded in memory, then stored with one PUT."""
        buffer = io.BytesIO()
        written = Written(buffer)
        yield written
        payload = buffer.getvalue()
        self.write_bytes(payload)
        written.sha256, written.size = hashlib.sha256(payload).hexdigest(), len(payload)

    def stat(self) -> Stat:
        fs, path = self._fs()
        info = fs.info(path)
        return Stat(int(info["size"]), _mtime_ns(fs, path, info))

    def list_files(self) -> dict[str, int]:
        fs, root = self._fs()
        found = fs.find(root, detail=True) if fs.exists(root) else {}
        return {
            path[len(root) + 1 :]: int(info["size"])
            for path, info in found.items()
            if info.get("type") != "directory" and path.startswith(root + "/")
        }

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Several small objects under this prefix, fetched together."""
        fs, root = self._fs()
        raw = fs.cat([f"{root}/{name}" for name in names])
        return {name: raw[f"{root}/{name}"] for name in names}

    def remove(self) -> None:
        fs, path = self._fs()
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def journal(self, stem: str) -> PrefixJournal:
        return PrefixJournal(self.join(f".{stem}-journal"))


def _mtime_ns(fs: Any, path: str, info: dict) -> int:
    modified = info.get("LastModified") or info.get("mtime") or info.get("created")
    if modified is None:
        modified = fs.modified(path)
    if hasattr(modified, "timestamp"):
        return int(round(modified.timestamp() * 1e9))
    return int(round(float(modified) * 1e9))


class _BatchWriter:
    """A batch's records, stored as one object when the batch ends (objects cannot be
    appended to)."""

    def __init__(self, target: FsspecLocation) -> None:
        self.target = target
        self.records: list[Entry] = []

    def append(self, record: Entry) -> None:
        self.records.append(record)

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None and self.records:
            self.target.write_manifest(self.records)


class _NoFollower(JournalFollower):
    """Batch objects are not followed while a run goes (each look is a listing request):
    the run reports their records when it ends."""

    def read_new(self) -> list[Entry]:
        return []


class PrefixJournal(Journal):
    """One object per finished batch under a prefix, removed at the end."""

    def __init__(self, prefix: FsspecLocation) -> None:
        self.prefix = prefix

    def writer(self, batch: str) -> _BatchWriter:
        name = hashlib.sha1(batch.encode()).hexdigest()[:16]
        return _BatchWriter(self.prefix.join(f"{name}.jsonl"))

    def records(self) -> Iterator[Entry]:
        for name in sorted(self.prefix.list_files()):
            text = self.prefix.join(name).read_bytes().decode("utf-8")
            yield from parse_journal_lines(text.splitlines(keepends=True))

    def follower(self) -> JournalFollower:
        return _NoFollower()

    def clear(self) -> None:
        self.prefix.remove()
