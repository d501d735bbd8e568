"""Writing and fingerprinting output files, so ``prep verify`` can check them later."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from manifests import atomic_path, is_url
from prep.storage import filesystem, join


def write_once(path: Path, data: bytes) -> str:
    """Write ``data`` atomically unless ``path`` exists (an earlier run of the same
    settings wrote it); return the sha256 of ``data``."""
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fingerprint_files(folder: Path, names: list[str]) -> dict[str, dict]:
    """``{name: {"size": bytes, "sha256": hex}}`` for the files of an aggregate format."""
    return {
        name: {"size": (folder / name).stat().st_size, "sha256": file_digest(folder / name)}
        for name in names
    }


class _HashingFile:
    """A write-only binary file that hashes and counts what passes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


@contextlib.contextmanager
def open_output(folder: Path | str, name: str, files: dict[str, dict]) -> Iterator[BinaryIO]:
    """A binary file to stream one output into, committed whole or not at all.

    Locally it is written under a temporary name and renamed; on object storage it is a
    multipart upload completed only on success. Its size and sha256 go into ``files``.
    """
    if is_url(folder):
        fs, path = filesystem(join(folder, name))
        fh = fs.open(path, "wb", autocommit=False)
        try:
            hashing = _HashingFile(fh)
            yield hashing
            fh.close()
            fh.commit()
        except BaseException:
            fh.discard()
            raise
    else:
        with atomic_path(Path(folder) / name) as tmp, open(tmp, "wb") as fh:
            hashing = _HashingFile(fh)
            yield hashing
    files[name] = {"size": hashing.size, "sha256": hashing.sha256.hexdigest()}
