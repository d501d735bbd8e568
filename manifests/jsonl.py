"""Reading and writing JSONL manifests, NeMo style: one JSON object per line.

Large manifests are streamed line by line; writes are atomic. Unknown keys pass through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from manifests.atomic import atomic_path, naming

Entry = dict[str, Any]


class ManifestError(ValueError):
    """A manifest line that is not a JSON object, or misses a required field."""


def iter_manifest(path: str | os.PathLike[str]) -> Iterator[Entry]:
    """Yield the entries of a manifest one by one, without loading the whole file."""
    with open(path, encoding="utf-8") as fh:
        yield from parse_manifest_lines(fh, path)


def parse_manifest_lines(lines: Iterable[str], name: str | os.PathLike[str]) -> Iterator[Entry]:
    """Entries from a manifest's lines (a file, or an object's text); ``name`` for errors."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{name}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise ManifestError(f"{name}:{lineno}: line is not a JSON object")
        yield entry


def read_manifest(path: str | os.PathLike[str]) -> list[Entry]:
    """All entries of a manifest, in file order."""
    return list(iter_manifest(path))


def dumps_entry(entry: Entry) -> str:
    """One manifest line: compact, UTF-8 kept readable, key order as given."""
    return json.dumps(entry, ensure_ascii=False, separators=(", ", ": "))


def write_manifest(path: str | os.PathLike[str], entries: Iterable[Entry]) -> int:
    """Write entries atomically (temporary file, then rename); return how many."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(dumps_entry(entry) + "\n")
            count += 1
    return count


class ManifestAppender:
    """Append entries to a journal as they complete, each line flushed.

    A run killed mid-way leaves at worst one torn last line, which
    :func:`iter_journal` ignores, so a rerun knows what was already done.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, entry: Entry) -> None:
        with naming(self.path):
            self._fh.write(dumps_entry(entry) + "\n")
            self._fh.flush()

    def close(self) -> None:
        with naming(self.path):
            self._fh.close()

    def __enter__(self) -> ManifestAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JournalFollower:
    """Read the records appended to a journal since the last call (like ``tail -f``).

    Starts at the journal's current end, so records of an earlier run are not re-read;
    a line still being written is left for the next call.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def read_new(self) -> list[Entry]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        records = []
        for line in complete.decode("utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def iter_journal(path: str | os.PathLike[str]) -> Iterator[Entry]:
    """Entries of a journal written by :class:`ManifestAppender`, skipping a torn line."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        yield from parse_journal_lines(fh)


def parse_journal_lines(lines: Iterable[str]) -> Iterator[Entry]:
    """Records from a journal's lines (kept ends): a torn or garbled line is skipped."""
    for line in lines:
        if not line.endswith("\n"):
            break
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            yield entry
