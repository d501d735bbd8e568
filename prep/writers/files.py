"""Writing and fingerprinting output files, so ``prep verify`` can check them later."""

from __future__ import annotations

import hashlib
from pathlib import Path

from manifests import atomic_path


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
