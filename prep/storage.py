"""Object storage for SRC and OUT: ``s3://bucket/prefix`` (any fsspec URL) beside local paths.

The S3 endpoint and credentials come from the usual AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``~/.aws``...), read by s3fs. An object is written with one PUT,
which S3 makes visible whole or not at all: the remote counterpart of write-then-rename.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from manifests import Entry, dumps_entry, is_url, parse_manifest_lines


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (no protocol)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


def join(location: Path | str, rel: str) -> Path | str:
    """``rel`` under an object prefix, or under a local folder."""
    if is_url(location):
        return f"{str(location).rstrip('/')}/{rel}"
    return Path(location) / rel


def read_bytes(url: str) -> bytes:
    """A whole object, in memory (compressed audio: a 2-hour mp3 is about 100 MB)."""
    fs, path = filesystem(url)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such object", url) from None


def write_bytes(url: str, data: bytes) -> None:
    fs, path = filesystem(url)
    fs.pipe_file(path, data)


def stat_fields(url: str) -> dict:
    """``source_size`` and ``source_mtime_ns`` of an object, as a local file has them."""
    fs, path = filesystem(url)
    info = fs.info(path)
    return {"source_size": int(info["size"]), "source_mtime_ns": _mtime_ns(fs, path, info)}


def _mtime_ns(fs: Any, path: str, info: dict) -> int:
    modified = info.get("LastModified") or info.get("mtime") or info.get("created")
    if modified is None:
        modified = fs.modified(path)
    if hasattr(modified, "timestamp"):
        return int(round(modified.timestamp() * 1e9))
    return int(round(float(modified) * 1e9))


def list_files(url: str) -> dict[str, dict]:
    """Every object under ``url``: its path relative to ``url`` and its fsspec info."""
    fs, root = filesystem(url)
    found = fs.find(root, detail=True) if fs.exists(root) else {}
    return {
        path[len(root) + 1 :]: info
        for path, info in found.items()
        if info.get("type") != "directory" and path.startswith(root + "/")
    }


def write_manifest_url(url: str, entries: Iterable[Entry]) -> int:
    lines = [dumps_entry(entry) + "\n" for entry in entries]
    write_bytes(url, "".join(lines).encode("utf-8"))
    return len(lines)


def read_manifest_url(url: str) -> list[Entry]:
    """Entries of a remote manifest; ``[]`` when there is none."""
    try:
        text = read_bytes(url).decode("utf-8")
    except FileNotFoundError:
        return []
    return list(parse_manifest_lines(text.splitlines(), url))


def remove(url: str) -> None:
    """Delete an object or a prefix, if present."""
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def local_or_url(location: str | os.PathLike[str]) -> str | Path:
    return location if is_url(location) else Path(location)
