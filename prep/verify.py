"""``prep verify``: check a folder written by ``prep convert`` or ``prep shard`` against
what the run recorded, before hours of training find out the hard way.

Every output is looked for, opened, measured and hashed: per-item files against their
manifest line (``sha256``, length), aggregate files (shards, ``data.h5``, ``audio.npy``)
against ``format.json`` (``files``: size and sha256) and their own structure, which each
format's writer checks (:meth:`prep.writers.base.FormatWriter.verify`). With
``sources`` the inputs are compared with what was recorded of them when they were read.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from manifests import Entry, ManifestError, iter_manifest
from prep.errors import UsageError
from prep.sources import SourceError, source_root
from prep.storage import location
from prep.writers import get_writer, writer_names
from prep.writers.files import check_file, check_wav, file_digest


@dataclass
class VerifyReport:
    """What was checked (items per folder) and every problem found, as ``path: reason``."""

    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        folders = ", ".join(f"{name or '.'}: {n} items" for name, n in self.checked.items())
        verdict = "all good" if self.ok else f"{len(self.problems)} problems"
        return f"verified {folders}; {verdict}"


def verify(
    path: str | os.PathLike[str], sources: str | os.PathLike[str] | None = None
) -> VerifyReport:
    """Check ``path``: a ``prep convert`` folder, a ``prep shard`` OUT or one format in it.

    ``sources``: the SRC the folder was made from, to check the inputs did not change.
    """
    path = _local(path)
    sources = None if sources is None else _local(sources)
    report = VerifyReport()
    if not path.is_dir():
        raise SourceError(f"{path}: no such folder")
    if sources is not None and not Path(sources).exists():
        raise SourceError(f"{sources}: no such folder or manifest")
    formats = sorted(p.parent for p in path.glob("*/format.json")) + sorted(
        p.parent for p in path.glob("*/.params.json") if not (p.parent / "format.json").exists()
    )
    if (path / "format.json").exists() or (path / ".params.json").exists():
        formats = [path]
    if formats:
        for folder in formats:
            name = folder.relative_to(path).as_posix() if folder != path else folder.name
            _verify_format(folder, name, report)
        if sources is not None:
            _verify_shard_inputs(formats, Path(sources), report)
    elif (path / "manifest.jsonl").exists():
        # SRC, or the folder of the manifest it was
        root = None if sources is None else source_root(Path(sources)).local_path
        _verify_converted(path, root, report)
    else:
        raise SourceError(f"{path}: no manifest.jsonl or format.json: not written by prep")
    return report


def _local(given: str | os.PathLike[str]) -> Path:
    """The file-system path of ``given`` (a path or ``file://`` URL); object storage is
    refused, as verify opens and hashes every file."""
    local = location(given).local_path
    if local is None:
        raise UsageError(
            f"prep verify reads local folders only; {given} is object storage "
            "(copy it to a local folder to verify it)"
        )
    return local


def _entries(manifest: Path, report: VerifyReport, label: str) -> list[Entry]:
    try:
        entries = list(iter_manifest(manifest))
    except FileNotFoundError:
        report.problems.append(f"{label}: manifest.jsonl is missing")
    except ManifestError as exc:
        report.problems.append(f"{label}: {exc}")
    else:
        report.problems += _check_entries(entries, label)
        return entries
    return []


def _check_entries(entries: list[Entry], label: str) -> Iterator[str]:
    """What a loader would trust: each key once (else items repeat in every epoch), and
    lengths that are positive integers."""
    counts = Counter(_item_key(e) for e in entries)
    for key, n in counts.items():
        if n > 1:
            yield f"{label}: key {key!r} appears {n} times"
    for line, entry in enumerate(entries, 1):
        n = entry.get("num_samples")
        if "num_samples" in entry and (not isinstance(n, int) or isinstance(n, bool) or n <= 0):
            yield f"{label}:{line}: num_samples {n!r} is not a positive integer"


def _item_key(entry: Entry) -> object:
    """What names an item: its key, else its file, and for an utterance its span too."""
    if "key" in entry:
        return entry["key"]
    if "file_num_samples" in entry:
        return f"{entry.get('audio_filepath')}@{entry.get('offset')}+{entry.get('num_samples')}"
    return entry.get("audio_filepath")


def _load_format(fmt_file: Path, label: str) -> tuple[dict | None, str | None]:
    """``format.json`` as a dict, or the one-line problem that it is not one."""
    try:
        fmt = json.loads(fmt_file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"{label}: not valid JSON ({exc})"
    if not isinstance(fmt, dict):
        return None, f"{label}: not a JSON object"
    return fmt, None


def _verify_converted(folder: Path, sources: Path | None, report: VerifyReport) -> None:
    entries = _entries(folder / "manifest.jsonl", report, "manifest.jsonl")
    checked: set[str] = set()  # a file with several utterance entries is read once
    for entry in entries:
        rel = entry.get("audio_filepath", "?")
        report.problems += _check_span(rel, entry)
        if rel in checked:
            continue
        checked.add(rel)
        path = folder / rel
        problems = list(check_file(path, rel, entry.get("file_size"), entry.get("sha256")))
        frames = entry.get("file_num_samples", entry.get("num_samples"))
        if not problems and frames is not None:
            problems += check_wav(path, rel, frames, entry.get("sample_rate", 0))
        report.problems += problems
        if sources is not None and "source" in entry:
            report.problems += _check_source(sources, entry)
    report.problems += _unlisted_outputs(folder, checked)
    report.checked[""] = len(entries)


def _check_span(rel: str, entry: Entry) -> Iterator[str]:
    """An utterance entry's span lies inside its file."""
    if "file_num_samples" not in entry:
        return
    try:
        start = round(float(entry["offset"]) * int(entry["sample_rate"]))
        end = start + int(entry["num_samples"])
        inside = 0 <= start < end <= int(entry["file_num_samples"])
    except (KeyError, TypeError, ValueError):
        inside = False
    if not inside:
        yield f"{rel}: offset/num_samples of an utterance lie outside the file"


def _unlisted_outputs(folder: Path, listed: set[str]) -> Iterator[str]:
    """Converted files no manifest entry names (two runs into one OUT, a lost manifest
    line): data a loader would never see."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in (".wav", ".flac") and path.is_file():
            rel = path.relative_to(folder).as_posix()
            if rel not in listed and not path.name.startswith("."):
                yield f"{rel}: not listed in manifest.jsonl"


def _check_source(root: Path, entry: Entry) -> Iterator[str]:
    path = root / entry["source"]
    label = f"source {entry['source']}"
    try:
        st = path.stat()
    except FileNotFoundError:
        yield f"{label}: missing"
        return
    if "source_size" in entry and st.st_size != entry["source_size"]:
        yield f"{label}: {st.st_size} bytes, {entry['source_size']} when converted"
    elif "source_sha256" in entry and file_digest(path) != entry["source_sha256"]:
        yield f"{label}: content changed since it was converted"
    elif "source_mtime_ns" in entry and st.st_mtime_ns != entry["source_mtime_ns"]:
        yield f"{label}: modified since it was converted (same content)"


def _verify_format(folder: Path, name: str, report: VerifyReport) -> None:
    fmt_file = folder / "format.json"
    if not fmt_file.exists():
        report.problems.append(f"{name}: incomplete (an interrupted prep shard); run it again")
        return
    fmt, problem = _load_format(fmt_file, f"{name}/format.json")
    if fmt is None:
        report.problems.append(problem)
        return
    entries = _entries(folder / "manifest.jsonl", report, f"{name}/manifest.jsonl")
    report.checked[name] = len(entries)
    if fmt.get("num_items") != len(entries):
        recorded = fmt.get("num_items")
        report.problems.append(
            f"{name}: manifest.jsonl has {len(entries)} items, format.json says {recorded}"
        )
    for file_name, recorded in fmt.get("files", {}).items():
        report.problems += check_file(
            folder / file_name, f"{name}/{file_name}", recorded["size"], recorded["sha256"]
        )
    kind = fmt.get("format")
    if kind not in writer_names():
        report.problems.append(f"{name}/format.json: unknown format {kind!r}")
        return
    report.problems += get_writer(kind).verify(folder, name, fmt, entries)


def _verify_shard_inputs(formats: list[Path], src: Path, report: VerifyReport) -> None:
    from prep.shard import input_fingerprint, read_inputs

    fingerprint = input_fingerprint(read_inputs(src))
    for folder in formats:
        fmt_file = folder / "format.json"
        if not fmt_file.exists():
            continue
        fmt, _ = _load_format(fmt_file, folder.name)
        if fmt is None:
            continue  # reported with the format
        if fmt.get("input") != fingerprint:
            report.problems.append(
                f"{folder.name}: made from other inputs than {src} holds now "
                "(a file was added, removed or changed)"
            )
