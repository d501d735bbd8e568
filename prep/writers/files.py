"""Writing and fingerprinting output files, so ``prep verify`` can check them later."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from manifests import atomic_path, naming
from prep.storage import Location, file_digest, location


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through plain writes: a full disk raises ENOSPC (``ndarray.tofile``
    only says how many bytes it wrote)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array(_PlainWrites(fh), array, allow_pickle=False)


class _PlainWrites:
    """Only ``write``: numpy then writes in chunks instead of ``tofile``."""

    def __init__(self, fh: BinaryIO) -> None:
        self.write = fh.write


def write_once(path: Path, data: bytes) -> str:
    """Write ``data`` atomically unless ``path`` exists (an earlier run of the same
    settings wrote it); return the sha256 of ``data``."""
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


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
        self.abandoned = False

    def write(self, data: bytes) -> int:
        if self.abandoned:  # a writer flushing from its __del__ after a failure
            return len(data)
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


@contextlib.contextmanager
def open_output(
    folder: Path | str | Location, name: str, files: dict[str, dict]
) -> Iterator[BinaryIO]:
    """A binary file to stream one output into, committed whole or not at all
    (:meth:`prep.storage.Location.open_write`). Its size and sha256 go into ``files``."""
    target = location(folder).join(name)
    with naming(target.path), target.open_write() as fh:
        hashing = _HashingFile(fh)
        try:
            yield hashing
        except BaseException:
            hashing.abandoned = True  # the output is dropped: nothing more goes into it
            raise
    files[name] = {"size": hashing.size, "sha256": hashing.sha256.hexdigest()}
