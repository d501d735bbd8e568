"""Writing and fingerprinting output files, and the checks ``prep verify`` makes of them."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

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


def check_file(path: Path, label: str, size: int | None, sha256: str | None) -> Iterator[str]:
    """Present, of the recorded size, with the recorded content hash."""
    try:
        actual_size = path.stat().st_size
    except FileNotFoundError:
        yield f"{label}: missing"
        return
    if size is not None and actual_size != size:
        yield f"{label}: {actual_size} bytes, the manifest says {size}"
    elif sha256 is not None and file_digest(path) != sha256:
        yield f"{label}: content differs from the recorded sha256 (corrupt or rewritten)"


def check_wav(path: Path, label: str, frames: int, sample_rate: int) -> Iterator[str]:
    """A readable mono WAV/FLAC of ``frames`` samples at ``sample_rate``."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        yield f"{label}: unreadable ({exc})"
        return
    if info.frames != frames:
        yield f"{label}: {info.frames} samples, the manifest says {frames}"
    if info.samplerate != sample_rate or info.channels != 1:
        yield f"{label}: {info.samplerate} Hz {info.channels} ch, expected {sample_rate} Hz mono"


def stored_samples(fmt: dict, entry: dict) -> int:
    """Samples an item holds: the segment when every item was padded or cut to it."""
    if fmt.get("segment_samples") and fmt.get("last") in ("pad", "drop"):
        return int(fmt["segment_samples"])
    return int(entry["num_samples"])


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
