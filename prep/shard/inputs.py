"""What ``prep shard`` reads: a ``prep convert`` folder, a manifest (one input per line: each
an utterance), or any folder of audio.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from manifests import Entry
from prep import storage
from prep.sources import Source, SourceError, Utterance, discover, is_manifest
from prep.storage import Location

ITEM_FIELDS = ("text", "label", "speaker", "language")
"""What an input's manifest line gives each of its items (the formats that know speakers
and languages, Lhotse's and Kaldi's, write them)."""


def _from_entry(path: Path | str, entry: Entry, line: int = 0) -> Source:
    """One manifest line as an input: named by the ``source`` a ``prep convert`` manifest
    records (else the file's own name), carrying its text/label, and its span (offset,
    duration) as its one utterance."""
    span = {k: entry[k] for k in ("offset", "duration") if k in entry}
    return Source(
        path,
        entry.get("source", entry["audio_filepath"]),
        {k: entry[k] for k in ITEM_FIELDS if k in entry},
        utterances=(Utterance(line, span),) if span else (),
    )


def read_inputs(src: Path | str | Location) -> list[Source]:
    """A ``prep convert`` folder (its manifest), a manifest, or any folder of audio."""
    src = storage.location(src)
    if src.local_path is None:  # a prefix: its manifest object, else every audio object
        entries = list(src.join("manifest.jsonl").iter_manifest())
        if not entries:
            return discover(src)
        return sorted(
            (
                _from_entry(src.join(e["audio_filepath"]).path, e, n)
                for n, e in enumerate(entries, 1)
            ),
            key=lambda s: s.rel,
        )
    src = src.local_path
    manifest = src / "manifest.jsonl" if src.is_dir() else src
    if src.is_dir() and not manifest.exists():  # a folder of audio, or a Kaldi data dir
        return sorted((one for s in discover(src) for one in _line_inputs(s)), key=lambda s: s.rel)
    if not manifest.exists() or not (src.is_dir() or is_manifest(src)):
        raise SourceError(f"{src}: no such folder or .jsonl manifest")
    inputs = (one for source in discover(manifest) for one in _line_inputs(source))
    return sorted(inputs, key=lambda s: s.rel)


def _line_inputs(source: Source) -> list[Source]:
    """A manifest's file as inputs: one per line naming it (each an utterance)."""
    if source.problem is not None or not source.utterances:
        return [source]
    return [
        _from_entry(source.path, {"audio_filepath": source.rel, **line.fields}, line.line)
        for line in source.utterances
    ]


def input_fingerprint(sources: list[Source]) -> str:
    """Changes when any input file changes (size or mtime), is added or removed."""
    digest = hashlib.sha256()
    for s in sources:
        try:
            size, mtime_ns = storage.location(s.path).stat()
            digest.update(f"{s.rel}\0{size}\0{mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{s.rel}\0missing\n".encode())
    return digest.hexdigest()


def input_folders(src: Location, sources: list[Source]) -> tuple[Location, set]:
    """SRC (a folder, or a manifest), and the folders the listed audio is in."""
    return src, {storage.location(s.path).parent for s in sources}
