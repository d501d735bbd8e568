"""Where SRC and OUT live: one :class:`Location` interface, the implementation chosen by
the URL scheme. A plain path or ``file://`` is the local file system; any other scheme
(``s3://bucket/prefix``, ``gs://``, ``memory://``...) goes through fsspec.

Callers take a location and use its methods; none of them asks which kind it is. What
truly needs a file system (a run lock, HDF5, a long file's parts written in place) asks
:attr:`Location.local_path`, which object storage does not have.
"""

from __future__ import annotations

import os
from pathlib import Path

from prep.storage.base import Journal, JournalFollower, Location, Stat, Written
from prep.storage.local import LocalLocation, file_digest
from prep.storage.remote import FsspecLocation

SCHEMES: dict[str, type[Location]] = {"": LocalLocation, "file": LocalLocation}
"""The implementation of each URL scheme; a scheme not listed goes through fsspec."""
DEFAULT_SCHEME_TYPE: type[Location] = FsspecLocation


def location(where: str | os.PathLike[str] | Location) -> Location:
    """The location of a path or URL (a location is returned as it is)."""
    if isinstance(where, Location):
        return where
    if not isinstance(where, str):
        return LocalLocation(Path(where))
    scheme, sep, rest = where.partition("://")
    if not sep:
        scheme = ""
    kind = SCHEMES.get(scheme, DEFAULT_SCHEME_TYPE)
    if kind is LocalLocation:
        return LocalLocation(Path(rest if sep else where))
    return kind(where)


__all__ = [
    "SCHEMES",
    "FsspecLocation",
    "Journal",
    "JournalFollower",
    "LocalLocation",
    "Location",
    "Stat",
    "Written",
    "file_digest",
    "location",
]
