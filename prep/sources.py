"""Finding the audio files a run works on: a folder walked recursively, or a JSONL manifest."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from loaders.audio.errors import DecodeError
from loaders.audio.sniff import is_audio_name, not_a_file_reason
from manifests import Entry, dumps_entry, iter_manifest, resolve_audio_path
from prep import layouts
from prep.storage import Location, location
from prep.utterances import names_whole_file

TRANSCRIPT_EXTENSIONS: tuple[str, ...] = (".txt", ".lab")


class SourceError(ValueError):
    """SRC cannot be used at all (missing, unreadable manifest...): the run stops."""


@dataclass(frozen=True)
class Problem:
    """Why a listed thing is not decoded, found while listing: reported by name."""

    reason: str
    skipped: bool = False
    """Left out on purpose (a symlinked folder), not a failure."""


@dataclass(frozen=True)
class Source:
    """One input file: where it is, its path relative to the source root, manifest fields."""

    path: Path | str
    """A local path, or the URL of an object (``s3://...``)."""
    rel: str
    fields: Entry = field(default_factory=dict)
    size: int | None = None
    """Known from the listing for objects; local files are asked when needed."""
    problem: Problem | None = None
    """Set for what cannot be converted at all (an unreadable folder, a name that is not
    UTF-8, a FIFO): every command reports it under ``rel`` and never decodes it."""
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


def is_manifest(path: Path | Location) -> bool:
    """A NeMo-style ``.json``/``.jsonl`` manifest, or a Lhotse ``.jsonl.gz`` one."""
    where = location(path)
    name = where.name.lower()
    return where.is_file() and (
        PurePosixPath(name).suffix in (".json", ".jsonl") or name.endswith(".jsonl.gz")
    )


def source_root(src: Path | Location) -> Location:
    """The folder that output paths mirror: SRC itself, or a manifest's folder."""
    src = location(src)
    return src.parent if is_manifest(src) else src


def protected_inputs(src: Path | Location, sources: list[Source] | None = None) -> tuple:
    """What OUT must keep clear of: a SRC folder; or a SRC manifest itself with the folders
    of the audio it lists (``sources`` when already read), not the rest of its folder, so
    OUT may sit beside the manifest."""
    src = location(src)
    if src.local_path is not None and layouts.is_kaldi_dir(src.local_path):
        listed = discover(src) if sources is None else sources
        return src, {location(s.path).parent for s in listed if s.problem is None}
    if not is_manifest(src):
        return src, set()
    listed = discover(src) if sources is None else sources
    return src, {location(s.path).parent for s in listed if s.path}


def discover(src: str | os.PathLike[str], extra_extensions: tuple[str, ...] = ()) -> list[Source]:
    """All audio sources under SRC (or listed by a manifest), sorted by relative path.

    Extensions match case-insensitively. Symlinked files are included (and followed
    when read); symlinked folders are not walked, so a link loop cannot hang a run.
    """
    where = location(src)
    if where.local_path is None:  # object storage: no folders, links or FIFOs to walk
        return _from_storage(where, extra_extensions)
    src = where.local_path
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    try:
        if layouts.is_kaldi_dir(src):
            return _from_manifest(src / layouts.WAV_SCP, layouts.kaldi_lines(src))
        if layouts.is_lhotse_manifest(src):
            return _from_manifest(src, layouts.lhotse_lines(src))
    except layouts.LayoutError as exc:
        raise SourceError(str(exc)) from None
    if is_manifest(src):
        if src.name.lower().endswith(".gz"):
            raise SourceError(f"{src}: a gzipped manifest that is not Lhotse's; gunzip it")
        return _from_manifest(src)
    if not src.is_dir():
        raise SourceError(f"{src}: not a folder or a .jsonl manifest")
    return _walk(src, extra_extensions)


def printable(name: str) -> str:
    """A name as valid UTF-8: bytes that are not UTF-8 (kept by Python as surrogates)
    are written as backslash escapes, so a JSON line can hold it."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk(src: Path, extra_extensions: tuple[str, ...]) -> list[Source]:
    """Every audio-named entry under ``src``, and a :class:`Problem` for each thing the
    walk cannot use: nothing under SRC vanishes from a run without a line.

    Iterative (a deep tree does not reach the recursion limit). Symlinked folders are not
    followed (a link loop cannot hang the run, and a link into the tree cannot list its
    files twice): each is a skip line.
    """
    found: list[Source] = []
    folders = [(src, "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            reason = f"folder cannot be read ({(exc.strerror or str(exc)).lower()})"
            found.append(Source(folder, prefix.rstrip("/") or ".", problem=Problem(reason)))
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                if not is_folder and entry.is_symlink() and entry.is_dir():
                    problem = Problem("symlinked folder, not followed", skipped=True)
                    found.append(Source(Path(entry.path), printable(rel), problem=problem))
                    continue
            except OSError:
                is_folder = False
            if is_folder:
                if not _is_utf8(entry.name):
                    problem = Problem("folder name is not valid UTF-8")
                    found.append(Source(Path(entry.path), printable(rel), problem=problem))
                else:
                    subfolders.append((Path(entry.path), rel + "/"))
                continue
            if not is_audio_name(entry.name, extra_extensions):
                continue
            found.append(_file_source(entry, rel))
        folders.extend(sorted(subfolders, reverse=True))
    return sorted(found, key=lambda s: s.rel)


def _file_source(entry: os.DirEntry, rel: str) -> Source:
    """An audio-named entry: a source, or a problem when it is no file to decode."""
    if not _is_utf8(entry.name):
        return Source(
            Path(entry.path), printable(rel), problem=Problem("file name is not valid UTF-8")
        )
    reason = None
    if not entry.is_file(follow_symlinks=False):
        with contextlib.suppress(OSError):  # a dangling symlink: decoding names it
            reason = not_a_file_reason(entry.stat().st_mode)
    return Source(Path(entry.path), rel, problem=Problem(reason) if reason else None)


def _from_manifest(manifest: Path, lines: list | None = None) -> list[Source]:
    """The manifest's entries as sources; an entry that names no usable file is a
    problem under ``NAME entry N``, and the others are still converted. ``lines``:
    another layout's lines already translated (:mod:`prep.layouts`), each
    ``(label, entry or reason)``, whose files are named from ``manifest``'s folder."""
    root = Path(os.path.abspath(manifest.parent))
    if lines is None:
        numbered = enumerate(iter_manifest(manifest), 1)
        lines = [(f"{manifest.name} entry {n}", entry) for n, entry in numbered]
    sources = []
    for n, (label, entry) in enumerate(lines, 1):
        if isinstance(entry, str):
            sources.append(Source(manifest, label, problem=Problem(entry)))
            continue
        problem = _entry_problem(entry)
        if problem:
            sources.append(Source(manifest, label, problem=Problem(problem)))
            continue
        audio = entry["audio_filepath"]
        path = resolve_audio_path(manifest, entry)
        absolute = Path(os.path.abspath(path))  # symlinks kept: the entry's own name
        try:
            rel = absolute.relative_to(root).as_posix()
        except ValueError:
            rel = PurePosixPath(*absolute.parts[1:]).as_posix()
        if rel in ("", "."):
            reason = f"'audio_filepath' names no file ({audio!r})"
            sources.append(Source(manifest, label, problem=Problem(reason)))
            continue
        fields = {k: v for k, v in entry.items() if k != "audio_filepath"}
        sources.append(Source(path, rel, fields, utterances=(Utterance(n, fields),)))
    return _one_source_per_file(manifest, sources)


def _entry_problem(entry: Entry) -> str | None:
    """Why a manifest entry names no usable file, or None."""
    audio = entry.get("audio_filepath")
    if audio is None and "audio_filepath" not in entry:
        return "no 'audio_filepath'"
    if not isinstance(audio, str):
        return "'audio_filepath' is not a string"
    try:
        dumps_entry(entry).encode("utf-8")
    except UnicodeEncodeError:
        return "holds text that is not valid UTF-8 (a lone surrogate)"
    if "\0" in audio:
        return "'audio_filepath' holds a NUL byte"
    return None


def _one_source_per_file(manifest: Path, lines: list[Source]) -> list[Source]:
    """Merge the lines naming one file into one source holding every line as an utterance:
    the file is decoded once and no line's transcript is lost. Two different files that
    would share a relative name stop the run (one of them would be dropped)."""
    by_rel: dict[str, list[Source]] = defaultdict(list)
    for line in lines:
        by_rel[line.rel].append(line)
    sources = []
    for rel, group in sorted(by_rel.items()):
        if group[0].problem is not None:  # ``NAME entry N``: one line each
            sources += group
            continue
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


def _from_storage(url: Location, extra_extensions: tuple[str, ...]) -> list[Source]:
    """Audio objects under ``url``, sorted by relative path; transcripts fetched at once."""
    files = url.list_files()
    if not files:
        raise SourceError(f"{url}: no such {url.noun}, or nothing under it")
    audio = sorted(rel for rel in files if is_audio_name(rel.rsplit("/", 1)[-1], extra_extensions))
    transcripts = {}
    for rel in audio:
        stem = rel.rsplit(".", 1)[0]
        found = [stem + ext for ext in TRANSCRIPT_EXTENSIONS if stem + ext in files]
        if found:
            transcripts[rel] = found[0]
    texts = url.read_many(list(transcripts.values())) if transcripts else {}
    sources = []
    for rel in audio:
        fields = {}
        if rel in transcripts:
            fields["text"] = texts[transcripts[rel]].decode("utf-8", errors="replace").strip()
        sources.append(Source(url.join(rel).path, rel, fields, size=files[rel]))
    return sources


def transcript_for(path: Path) -> str | None:
    """The text of ``stem.txt`` or ``stem.lab`` beside an audio file, if there is one.

    Raises :class:`DecodeError` for one that is not UTF-8: replacing its bytes would
    train on a label nobody wrote. An empty one is the empty text.
    """
    for ext in TRANSCRIPT_EXTENSIONS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            try:
                return candidate.read_bytes().decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise DecodeError(
                    f"transcript {printable(candidate.name)} is not UTF-8 text "
                    f"(byte 0x{exc.object[exc.start]:02x} at {exc.start})"
                ) from None
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
    try:
        return location(source.path).stat().size
    except OSError:
        return 0
