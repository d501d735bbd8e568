"""Finding the audio files a run works on: a folder walked recursively, or a JSONL manifest."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from loaders.decode import is_audio_name
from manifests import Entry, is_url, iter_manifest, resolve_audio_path
from prep.storage import filesystem, join, list_files
from prep.utterances import names_whole_file

TRANSCRIPT_EXTENSIONS: tuple[str, ...] = (".txt", ".lab")


class SourceError(ValueError):
    """SRC cannot be used at all (missing, unreadable manifest...): the run stops."""


@dataclass(frozen=True)
class Source:
    """One input file: where it is, its path relative to the source root, manifest fields."""

    path: Path | str
    """A local path, or the URL of an object (``s3://...``)."""
    rel: str
    fields: Entry = field(default_factory=dict)
    size: int | None = None
    """Known from the listing for objects; local files are asked when needed."""
    utterances: tuple[Utterance, ...] = ()
    """The manifest lines naming this file, each one utterance (NeMo/Lhotse layout for long
    recordings: ``offset``/``duration`` per line); empty for a folder walk."""

    @property
    def one_whole_file(self) -> bool:
        """A folder walk's file, or the only line naming its file with no offset: the file
        is one item, filtered by duration as a whole."""
        return len(self.utterances) <= 1 and all(
            names_whole_file(u.fields) for u in self.utterances
        )


@dataclass(frozen=True)
class Utterance:
    """One manifest line of a source: its line number and its fields (``offset``,
    ``duration``, ``text``... everything but ``audio_filepath``)."""

    line: int
    fields: Entry


def is_manifest(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".json", ".jsonl")


def source_root(src: Path) -> Path:
    """The folder that output paths mirror: SRC itself, or a manifest's folder."""
    return src.parent if is_manifest(src) else src


def discover(src: str | os.PathLike[str], extra_extensions: tuple[str, ...] = ()) -> list[Source]:
    """All audio sources under SRC (or listed by a manifest), sorted by relative path.

    Extensions match case-insensitively. Symlinked files are included (and followed
    when read); symlinked folders are not walked, so a link loop cannot hang a run.
    """
    if is_url(src):
        return _from_storage(str(src), extra_extensions)
    src = Path(src)
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    if is_manifest(src):
        return _from_manifest(src)
    if not src.is_dir():
        raise SourceError(f"{src}: not a folder or a .jsonl manifest")
    found = []
    for dirpath, dirnames, filenames in os.walk(src, onerror=None):
        dirnames.sort()
        for name in filenames:
            if is_audio_name(name, extra_extensions):
                path = Path(dirpath) / name
                found.append(Source(path, path.relative_to(src).as_posix()))
    return sorted(found, key=lambda s: s.rel)


def _from_manifest(manifest: Path) -> list[Source]:
    root = manifest.parent.resolve()
    sources = []
    for n, entry in enumerate(iter_manifest(manifest), 1):
        if not isinstance(entry.get("audio_filepath"), str):
            raise SourceError(f"{manifest}: entry {n} has no 'audio_filepath'")
        path = resolve_audio_path(manifest, entry)
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = PurePosixPath(*path.resolve().parts[1:]).as_posix()
        fields = {k: v for k, v in entry.items() if k != "audio_filepath"}
        sources.append(Source(path, rel, fields, utterances=(Utterance(n, fields),)))
    return _one_source_per_file(manifest, sources)


def _one_source_per_file(manifest: Path, lines: list[Source]) -> list[Source]:
    """Merge the lines naming one file into one source holding every line as an utterance:
    the file is decoded once and no line's transcript is lost. Two different files that
    would share a relative name stop the run (one of them would be dropped)."""
    by_rel: dict[str, list[Source]] = defaultdict(list)
    for line in lines:
        by_rel[line.rel].append(line)
    sources = []
    for rel, group in sorted(by_rel.items()):
        paths = {os.path.realpath(s.path) for s in group}
        if len(paths) > 1:
            first, second = sorted(paths)[:2]
            raise SourceError(
                f"{manifest}: {first} and {second} map to the same relative name {rel!r}; "
                "move one of them, or list them in separate manifests"
            )
        utterances = tuple(u for s in group for u in s.utterances)
        sources.append(Source(group[0].path, rel, group[0].fields, utterances=utterances))
    return sources


def _from_storage(url: str, extra_extensions: tuple[str, ...]) -> list[Source]:
    """Audio objects under ``url``, sorted by relative path; transcripts fetched at once."""
    files = list_files(url)
    if not files:
        raise SourceError(f"{url}: no such prefix, or nothing under it")
    audio = sorted(rel for rel in files if is_audio_name(rel.rsplit("/", 1)[-1], extra_extensions))
    transcripts = {}
    for rel in audio:
        stem = rel.rsplit(".", 1)[0]
        found = [stem + ext for ext in TRANSCRIPT_EXTENSIONS if stem + ext in files]
        if found:
            transcripts[rel] = found[0]
    texts = {}
    if transcripts:
        fs, root = filesystem(url)
        raw = fs.cat([f"{root}/{t}" for t in transcripts.values()])
        texts = {t: raw[f"{root}/{t}"] for t in transcripts.values()}
    sources = []
    for rel in audio:
        fields = {}
        if rel in transcripts:
            fields["text"] = texts[transcripts[rel]].decode("utf-8", errors="replace").strip()
        sources.append(Source(join(url, rel), rel, fields, size=int(files[rel]["size"])))
    return sources


def transcript_for(path: Path) -> str | None:
    """The text of ``stem.txt`` or ``stem.lab`` beside an audio file, if there is one."""
    for ext in TRANSCRIPT_EXTENSIONS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8", errors="replace").strip()
    return None


def plan_output_names(rels: list[str], suffix: str) -> dict[str, str]:
    """Map each source's relative path to a distinct output path ending in ``suffix``.

    ``a.mp3`` becomes ``a.wav``; when two sources would collide (``a.mp3`` and ``a.ogg``,
    compared case-insensitively) both keep their extension (``a.mp3.wav``, ``a.ogg.wav``);
    whatever still collides gets a short hash of its source path. Deterministic.
    """
    names = {rel: PurePosixPath(rel).with_suffix(suffix).as_posix() for rel in rels}
    for rename in (_keep_extension, _add_hash):
        collisions = _collisions(names)
        if not collisions:
            break
        for rel in collisions:
            names[rel] = rename(rel, suffix)
    while collisions := _collisions(names):  # pragma: no cover - needs a hash collision
        for rel in collisions:
            names[rel] = _add_hash(names[rel], suffix)
    return names


def _collisions(names: dict[str, str]) -> list[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for rel, out in names.items():
        groups[out.lower()].append(rel)
    return sorted(rel for group in groups.values() if len(group) > 1 for rel in group)


def _keep_extension(rel: str, suffix: str) -> str:
    return rel + suffix


def _add_hash(rel: str, suffix: str) -> str:
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    path = PurePosixPath(rel)
    return path.with_name(f"{path.stem}-{digest}{suffix}").as_posix()


def source_size(source) -> int:
    """Bytes of a source, for batching: known from the listing for objects, else asked."""
    if getattr(source, "size", None) is not None:
        return source.size
    if is_url(source.path):
        return 0
    try:
        return os.stat(source.path).st_size
    except OSError:
        return 0
