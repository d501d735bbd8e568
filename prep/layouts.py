"""Other toolkits' dataset layouts as inputs: a Kaldi data directory and a Lhotse manifest.

Each is translated into the entries a NeMo manifest would hold (``audio_filepath``, and per
utterance ``offset``/``duration``/``text``/``speaker``/``language``), so the rest of a run
sees the same :class:`~prep.sources.Source` objects and utterance spans a NeMo manifest
makes. What cannot be read as a file span (a ``wav.scp`` command, a Lhotse URL or a
channel picked out of a multi-channel recording) is one problem line, never a silent
guess. Detected by content: a folder holding ``wav.scp``; a ``.jsonl``/``.jsonl.gz`` whose
first line has Lhotse's keys.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from manifests import Entry

WAV_SCP = "wav.scp"
LHOTSE_KEYS = ("recording", "supervisions", "sources")
"""A cut line has ``recording``/``supervisions``, a recording line ``sources``."""


class LayoutError(ValueError):
    """A layout file that cannot be read at all (not UTF-8, not JSON lines)."""


def is_kaldi_dir(path: Path) -> bool:
    return path.is_dir() and (path / WAV_SCP).is_file()


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def is_lhotse_manifest(path: Path) -> bool:
    """A ``.jsonl``/``.jsonl.gz`` file whose first line is a Lhotse cut or recording."""
    name = path.name.lower()
    if not (name.endswith((".jsonl", ".jsonl.gz", ".json")) and path.is_file()):
        return False
    try:
        with _open_text(path) as fh:
            first = json.loads(fh.readline() or "null")
    except (OSError, UnicodeDecodeError, ValueError, EOFError):
        return False
    return isinstance(first, dict) and any(k in first for k in LHOTSE_KEYS)


def resolve_path(layout_folder: Path, path: str) -> str:
    """A relative path as Kaldi and Lhotse mean it: from where the recipe ran (the current
    folder) when it names a file there, else from the layout's own folder."""
    if os.path.isabs(path) or not os.path.exists(path):
        return str(layout_folder / path) if not os.path.isabs(path) else path
    return os.path.abspath(path)


Line = tuple[str, Entry | str]
"""One translated line: its label (``wav.scp line 3``) and its NeMo-style entry, or the
reason it has none."""


# Kaldi


def _kaldi_table(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line number, id, rest)`` of a Kaldi text table (blank lines skipped)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                parts = line.strip().split(maxsplit=1)
                if parts:
                    yield number, parts[0], parts[1] if len(parts) > 1 else ""
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _kaldi_map(path: Path) -> dict[str, str]:
    return {key: value for _, key, value in _kaldi_table(path)} if path.is_file() else {}


def kaldi_lines(folder: Path) -> list[Line]:
    """A Kaldi data dir as NeMo-style entries: one per ``segments`` line (else one per
    ``wav.scp`` recording), with ``text`` and ``speaker`` (``utt2spk``) when given."""
    folder = Path(os.path.abspath(folder))
    recordings: dict[str, str | None] = {}
    numbers: dict[str, int] = {}
    lines: list[Line] = []
    for number, rec, where in _kaldi_table(folder / WAV_SCP):
        label = f"{WAV_SCP} line {number}"
        numbers[rec] = number
        if where.endswith("|"):
            recordings[rec] = None
            lines.append((label, f"{rec}: a command ({where}), not a file; audioprep reads "
                          "files only (write the audio out, then list the files)"))  # fmt: skip
        elif not where:
            recordings[rec] = None
            lines.append((label, f"{rec}: no file named"))
        else:
            recordings[rec] = resolve_path(folder, where)
    texts = _kaldi_map(folder / "text")
    speakers = _kaldi_map(folder / "utt2spk")
    languages = _kaldi_map(folder / "utt2lang")

    def entry(utt: str, path: str, **span: float) -> Entry:
        fields: Entry = {"audio_filepath": path, **span}
        for name, table in (("text", texts), ("speaker", speakers), ("language", languages)):
            if utt in table:
                fields[name] = table[utt]
        fields["utt_id"] = utt
        return fields

    segments = folder / "segments"
    if not segments.is_file():
        whole = [(rec, path) for rec, path in recordings.items() if path]
        return lines + [(f"{WAV_SCP} line {numbers[rec]}", entry(rec, path)) for rec, path in whole]
    for number, utt, rest in _kaldi_table(segments):
        label = f"segments line {number}"
        parts = rest.split()
        if len(parts) != 3:
            lines.append((label, f"{utt}: expected 'UTT REC START END'"))
            continue
        rec, start, end = parts
        if rec not in recordings:
            lines.append((label, f"{utt}: recording {rec} is not in {WAV_SCP}"))
            continue
        if recordings[rec] is None:
            continue  # its wav.scp line is the problem, said once
        try:
            begin, stop = float(start), float(end)
        except ValueError:
            lines.append((label, f"{utt}: start {start!r} or end {end!r} is not a number"))
            continue
        span = {"offset": begin} if stop == -1 else {"offset": begin, "duration": stop - begin}
        lines.append((label, entry(utt, recordings[rec], **span)))
    return lines


# Lhotse


def lhotse_lines(manifest: Path) -> list[Line]:
    """A Lhotse cuts or recordings manifest as NeMo-style entries: one per supervision of a
    cut (its span, text, speaker, language), a cut without any as itself, a recording as
    its whole file."""
    lines: list[Line] = []
    try:
        with _open_text(manifest) as fh:
            for number, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                label = f"{manifest.name} line {number}"
                try:
                    item = json.loads(text)
                except ValueError as exc:
                    raise LayoutError(f"{manifest}:{number}: not valid JSON ({exc})") from None
                lines += _lhotse_item(label, item)
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise LayoutError(f"{manifest}: not readable JSON lines ({exc})") from None
    folder = Path(os.path.abspath(manifest.parent))
    for _, entry in lines:
        if isinstance(entry, dict):
            entry["audio_filepath"] = resolve_path(folder, entry["audio_filepath"])
    return lines


def _recording_path(recording: dict, channels: object = None) -> str:
    """The file of a Lhotse recording, or a :class:`ValueError` saying why it has none we
    can read as is."""
    sources = recording.get("sources") or []
    if len(sources) != 1:
        raise ValueError(f"recording {recording.get('id')} has {len(sources)} audio sources")
    source = sources[0]
    if source.get("type") != "file":
        raise ValueError(
            f"recording {recording.get('id')}: source type {source.get('type')!r}, "
            "audioprep reads 'file' sources only"
        )
    transforms = [t.get("name") for t in recording.get("transforms") or []]
    if any(name != "Resample" for name in transforms):
        raise ValueError(
            f"recording {recording.get('id')}: transforms {transforms} are not applied by "
            "audioprep (it would read the untransformed audio)"
        )
    ids = recording.get("channel_ids") or [0]
    picked = sorted(channels) if isinstance(channels, list) else [channels]
    if len(ids) > 1 and channels is not None and picked != sorted(ids):
        raise ValueError(
            f"recording {recording.get('id')}: the cut takes channel {channels} of "
            f"{len(ids)}; audioprep mixes every channel to mono"
        )
    return str(source.get("source"))


def _lhotse_item(label: str, item: dict) -> list[Line]:
    if "recording" not in item and "supervisions" not in item:  # a recording line
        try:
            return [(label, {"audio_filepath": _recording_path(item), "utt_id": item.get("id")})]
        except ValueError as exc:
            return [(label, str(exc))]
    recording = item.get("recording")
    if not isinstance(recording, dict):
        return [(label, f"cut {item.get('id')} has no recording")]
    try:
        path = _recording_path(recording, item.get("channel"))
    except ValueError as exc:
        return [(label, f"cut {item.get('id')}: {exc}")]
    start, length = float(item.get("start", 0.0)), float(item.get("duration", 0.0))
    supervisions = item.get("supervisions") or []
    if not supervisions:
        return [(label, {"audio_filepath": path, "offset": start, "duration": length,
                         "utt_id": item.get("id")})]  # fmt: skip
    lines = []
    for sup in supervisions:
        begin = max(0.0, float(sup.get("start", 0.0)))  # relative to the cut
        end = min(length, float(sup.get("start", 0.0)) + float(sup.get("duration", 0.0)))
        entry: Entry = {"audio_filepath": path, "offset": round(start + begin, 6),
                        "duration": round(end - begin, 6)}  # fmt: skip
        for name in ("text", "speaker", "language"):
            if sup.get(name) is not None:
                entry[name] = sup[name]
        entry["utt_id"] = sup.get("id")
        lines.append((f"{label} supervision {sup.get('id')}", entry))
    return lines
