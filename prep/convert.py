"""``prep convert``: any audio to 16 kHz mono 16-bit WAV (or FLAC), in memory, in parallel.

Each file is decoded, mixed down and resampled in blocks (memory stays flat whatever its
length), written under a temporary name and renamed. Results are journalled as they come
back, so a killed run resumes where it stopped; a rerun skips what is complete and current.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from loaders.decode import (
    CHANNEL_MODES,
    DECODERS,
    RESAMPLE_QUALITIES,
    AudioInfo,
    AudioReader,
    DecodeError,
    SoundfileReader,
    iter_mono,
    open_audio,
    quiet_native_stderr,
    resampler_version,
    to_int16,
)
from manifests import Entry, partial_name
from prep.errors import UsageError, os_reason
from prep.parallel import Workers, batch_by_size, check_backend
from prep.parts import (
    PartDone,
    PartTask,
    convert_part,
    finish_output,
    iter_parts,
    plan_parts,
    start_output,
)
from prep.paths import check_out
from prep.pcm import pcm16_writer
from prep.readahead import read_ahead
from prep.runlock import locked_out
from prep.sources import (
    Source,
    discover,
    plan_output_names,
    source_root,
    source_size,
    transcript_for,
)
from prep.storage import Journal, Location, file_digest, location
from prep.utterances import Span, SpanError, line_span

log = logging.getLogger(__name__)

TARGETS = {"wav16": ("WAV", ".wav"), "flac16": ("FLAC", ".flac")}
MIN_AUDIO_SECONDS = 0.010
"""Shorter files hold no usable audio (less than one 10 ms analysis frame): skipped."""

MANIFEST = "manifest.jsonl"
ERRORS = "errors.jsonl"
SKIPPED = "skipped.jsonl"
JOURNAL_STEM = "convert"
"""The run's journal (:meth:`prep.storage.Location.journal`): ``convert.journal.jsonl`` in a
local OUT, one object per finished batch under ``.convert-journal/`` on object storage."""
JOURNAL = f"{JOURNAL_STEM}.journal.jsonl"


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that decides what a converted file contains, plus run settings."""

    to: str = "wav16"
    sample_rate: int = 16000
    channels: str = "mix"
    decoder: str = "auto"
    quality: str = "HQ"
    min_duration: float | None = None
    max_duration: float | None = None
    overwrite: bool = False
    jobs: int = 0
    extensions: tuple[str, ...] = ()
    backend: str = "local"
    scheduler: str | None = None

    def output_params(self) -> dict:
        """The options an output depends on: a change of any of them redoes the file."""
        return {
            "to": self.to,
            "sr": self.sample_rate,
            "channels": self.channels,
            "decoder": self.decoder,
            "quality": self.quality,
        }

    def validate(self) -> None:
        if self.to not in TARGETS:
            raise UsageError(f"unknown --to {self.to!r} (choose from {', '.join(TARGETS)})")
        if not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"--sr {self.sample_rate} is not a usable sample rate (1000-384000)")
        if self.channels not in CHANNEL_MODES:
            raise UsageError(f"unknown --channels {self.channels!r}")
        if self.decoder not in DECODERS:
            raise UsageError(f"unknown --decoder {self.decoder!r}")
        if self.quality not in RESAMPLE_QUALITIES:
            raise UsageError(f"unknown resampling quality {self.quality!r}")
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a non-negative number")
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration > self.max_duration
        ):
            raise UsageError("--min-duration is larger than --max-duration")
        if self.jobs < 0:
            raise UsageError("--jobs must be positive")
        check_backend(self.backend, self.scheduler)


@dataclass
class FileResult:
    """The outcome of one source: converted (with its entry), skipped or failed (with why)."""

    rel: str
    status: str
    entry: Entry | None = None
    reason: str | None = None


@dataclass
class ConvertSummary:
    converted: int = 0
    already_done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    converted_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors: list[Entry] = field(default_factory=list)

    def line(self) -> str:
        speed = self.converted_seconds / self.wall_seconds if self.wall_seconds else 0.0
        return (
            f"converted {self.converted}, already done {self.already_done}, "
            f"skipped {self.skipped}, failed {self.failed}; "
            f"{self.audio_seconds / 3600:.2f} h of audio in the manifest; "
            f"{self.wall_seconds:.1f} s wall, {speed:.0f}x real time"
        )


@dataclass(frozen=True)
class _Job:
    source: Source
    out_rel: str


class _Skip(Exception):
    """A file left out on purpose (duration filters, too short): not an error."""


def _stat_fields(where: Location) -> dict:
    size, mtime_ns = where.stat()
    return {"source_size": size, "source_mtime_ns": mtime_ns}


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)
"""What ``Path.exists`` takes for "nothing there": the decoder then says why."""


def _stat_if_present(where: Location) -> dict:
    try:
        return _stat_fields(where)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return {}
        raise


def _duration_filter(seconds: float, options: ConvertOptions) -> str | None:
    if seconds < MIN_AUDIO_SECONDS:
        minimum_ms = MIN_AUDIO_SECONDS * 1000
        return f"too short: {seconds * 1000:.1f} ms of audio (minimum {minimum_ms:.0f} ms)"
    if options.min_duration is not None and seconds < options.min_duration:
        return f"duration {seconds:.2f} s is below --min-duration {options.min_duration:g} s"
    if options.max_duration is not None and seconds > options.max_duration:
        return f"duration {seconds:.2f} s is above --max-duration {options.max_duration:g} s"
    return None


@contextlib.contextmanager
def _output_blocks(opened: AudioReader, options: ConvertOptions) -> Iterator[Iterator[np.ndarray]]:
    """The file's output samples, mono float32 at the output rate.

    A long FLAC or WAV goes part by part (:mod:`prep.parts`), exactly as parallel part
    workers would convert it, so its bytes do not depend on how the run was spread;
    anything else is one stream. Either way a long file is decoded a block ahead in a
    thread.
    """
    sr, channels, quality = options.sample_rate, options.channels, options.quality
    plan = plan_parts(opened.info, sr)
    with read_ahead(opened) as reader:
        if plan is not None:
            yield iter_parts(reader, plan, channels, quality)
        else:
            yield iter_mono(reader, sr, channels, quality)


def _write_pcm(
    blocks: Iterator[np.ndarray], target: Path | BinaryIO, fmt: str, options: ConvertOptions
) -> int:
    """Write every block as 16-bit PCM; return the samples written."""
    sr = options.sample_rate
    max_samples = None if options.max_duration is None else options.max_duration * sr
    written = 0
    with pcm16_writer(target, fmt, sr) as write:
        for block in blocks:
            write(to_int16(block))
            written += len(block)
            if max_samples is not None and written > max_samples:
                raise _Skip(_duration_filter(written / sr, options))
    if reason := _duration_filter(written / sr, options):
        raise _Skip(reason)
    return written


def _write_to(
    blocks: Iterator[np.ndarray], out: Location, fmt: str, options: ConvertOptions
) -> tuple[int, str, int]:
    """Write the output whole or not at all (:meth:`prep.storage.Location.writing`); return
    its samples, sha256 and size in bytes."""
    with out.writing() as stored:
        samples = _write_pcm(blocks, stored.target, fmt, options)
    return samples, stored.sha256, stored.size


def convert_file(
    source: Source, out_path: Path | str | Location, out_rel: str, options: ConvertOptions
) -> Entry:
    """Convert one file to ``out_path`` atomically and return its manifest entry.

    ``source.path`` and ``out_path`` may be object URLs: the object is fetched into memory
    and decoded there; the output is encoded in memory and stored with one PUT.
    Raises :class:`DecodeError` for bad input and :class:`_Skip` for filtered files.
    """
    fmt = TARGETS[options.to][0]
    src, out = location(source.path), location(out_path)
    audio_input = src.decoder_input()
    fetched = isinstance(audio_input, bytes)  # in memory: it cannot change under us
    stat = _stat_if_present(src)
    if not source.one_whole_file:  # several utterances: filtered one by one (_line_entries)
        options = dataclasses.replace(options, min_duration=None, max_duration=None)
    text = source.fields.get("text")
    if text is None and not fetched:  # an object's transcript came with the listing
        text = transcript_for(source.path)  # before any work: a bad one fails the file
    with open_audio(audio_input, options.decoder) as opened:
        info = opened.info
        if info.duration is not None and (reason := _duration_filter(info.duration, options)):
            raise _Skip(reason)
        with _output_blocks(opened, options) as blocks:
            written, digest, size = _write_to(blocks, out, fmt, options)
    if stat:  # recorded so `prep verify --sources` can tell a changed source
        stat["source_sha256"] = (
            hashlib.sha256(audio_input).hexdigest() if fetched else file_digest(audio_input)
        )
        if not fetched and _changed(src, stat):
            out.remove()  # made from a source that changed under it (never a source)
            raise DecodeError(CHANGED)
    return _entry(source, out_rel, info, written, digest, size, stat, options, text)


CHANGED = "the file changed while it was being converted"


def _changed(where: Location, stat: dict) -> bool:
    """Whether a source's size or mtime differs from ``stat`` (taken before decoding)."""
    try:
        now = _stat_fields(where)
    except OSError:
        return True
    return any(now[k] != stat[k] for k in now)


def _entry(
    source: Source,
    out_rel: str,
    info: AudioInfo,
    written: int,
    digest: str,
    size: int,
    stat: dict,
    options: ConvertOptions,
    text: str | None,
) -> Entry:
    """The manifest line of one converted file."""
    sr = options.sample_rate
    entry: Entry = {
        "audio_filepath": out_rel,
        "duration": round(written / sr, 6),
        "offset": 0.0,
    }
    if text is not None:
        entry["text"] = text
    entry.update(
        {
            "sample_rate": sr,
            "num_samples": written,
            "source": source.rel,
            **stat,
            "source_sample_rate": info.sample_rate,
            "source_channels": info.channels,
            "source_format": info.format,
            "decoder": info.decoder,
            "decoder_version": info.decoder_version,
            "resampler": "soxr" if info.sample_rate != sr else "none",
            "resampler_version": resampler_version(),
            "resample_quality": options.quality,
            "sha256": digest,
            "file_size": size,
            "convert_params": options.output_params(),
        }
    )
    for key, value in source.fields.items():
        entry.setdefault(key, value)
    return entry


FILE_FIELDS = (
    "source",
    "source_size",
    "source_mtime_ns",
    "source_sha256",
    "source_sample_rate",
    "source_channels",
    "source_format",
    "decoder",
    "decoder_version",
    "resampler",
    "resampler_version",
    "resample_quality",
    "sha256",
    "file_size",
    "convert_params",
)
"""What an entry says of the converted file as a whole, whichever line it stands for."""


def _line_entry(file_entry: Entry, fields: Entry, span: Span | None, sr: int) -> Entry:
    """The entry of one manifest line: the file's fields, the line's span and its own fields."""
    file_samples = file_entry.get("file_num_samples", file_entry["num_samples"])
    samples = file_samples if span is None else span.length
    entry: Entry = {
        "audio_filepath": file_entry["audio_filepath"],
        "duration": round(samples / sr, 6),
        "offset": 0.0 if span is None else round(span.start / sr, 6),
    }
    if fields.get("text") is not None:
        entry["text"] = fields["text"]
    entry.update(sample_rate=sr, num_samples=samples)
    if span is not None:
        entry["file_num_samples"] = file_samples
    entry.update({k: file_entry[k] for k in FILE_FIELDS if k in file_entry})
    for key, value in fields.items():
        entry.setdefault(key, value)
    return entry


def _line_entries(
    file_entry: Entry, source: Source, options: ConvertOptions
) -> tuple[list[Entry], list[Entry], list[Entry]]:
    """A converted file's manifest entries, errors and skips: one entry per manifest line
    naming it, each pointing at its own span of the file (``offset``/``duration``), so no
    utterance's transcript is lost; the file's own entry for a folder walk's file."""
    if not source.utterances:
        return [file_entry], [], []
    sr = options.sample_rate
    file_samples = file_entry.get("file_num_samples", file_entry["num_samples"])
    entries, errors, skipped = [], [], []
    first_line_of: dict[Span | None, int] = {}
    for line in source.utterances:
        where = {"source": source.rel, "line": line.line}
        try:
            span = line_span(line.fields, file_samples, sr)
        except SpanError as exc:
            errors.append({**where, "reason": f"manifest line {line.line}: {exc}"})
            continue
        if span in first_line_of:
            reason = f"manifest line {line.line} names the audio of line {first_line_of[span]}"
            errors.append({**where, "reason": reason})
            continue
        first_line_of[span] = line.line
        if span is None and len(source.utterances) == 1 and "file_num_samples" not in file_entry:
            return [file_entry], [], []  # one line naming the whole file: the file's entry
        entry = _line_entry(file_entry, line.fields, span, sr)
        if not source.one_whole_file and (reason := _duration_filter(entry["duration"], options)):
            skipped.append({**where, "reason": f"manifest line {line.line}: {reason}"})
            continue
        entries.append(entry)
    return entries, errors, skipped


def _journal_record(result: FileResult) -> Entry:
    if result.status == "converted":
        return result.entry
    return {"source": result.rel, "status": result.status, "reason": result.reason}


def _convert_batch(
    jobs: list[_Job | PartTask],
    out_root: Location,
    journal: Journal,
    options: ConvertOptions,
) -> list[FileResult | PartDone]:
    """Worker side: convert a batch of files and parts of long files, never raising for a
    bad one. A part's outcome goes back to the main process, which finishes its file.

    Each file's outcome goes to the journal as soon as it is known (locally one flushed
    line; on object storage the batch's outcomes are stored as one object when the batch
    ends): a killed run's work is not lost.
    """
    results = []
    batch = "\n".join(job.source.rel for job in jobs if isinstance(job, _Job))
    with quiet_native_stderr(), journal.writer(batch) as appender:
        for job in jobs:
            if isinstance(job, PartTask):
                results.append(convert_part(job))
                continue
            target = out_root.join(job.out_rel)
            try:
                entry = convert_file(job.source, target, job.out_rel, options)
                results.append(FileResult(job.source.rel, "converted", entry))
            except _Skip as skip:
                results.append(FileResult(job.source.rel, "skipped", reason=str(skip)))
            except DecodeError as exc:
                results.append(FileResult(job.source.rel, "failed", reason=str(exc)))
            except OSError as exc:
                results.append(FileResult(job.source.rel, "failed", reason=os_reason(exc)))
            appender.append(_journal_record(results[-1]))
    return results


def _previous_entries(out: Location) -> dict[str, Entry]:
    """What earlier runs completed, from the last manifest and an interrupted run's journal."""
    entries: dict[str, Entry] = {}
    manifest = out.join(MANIFEST)
    try:
        for entry in manifest.iter_manifest():
            if isinstance(entry.get("source"), str):
                entries[entry["source"]] = entry
    except ValueError:
        log.warning("%s is unreadable; converting everything again", manifest)
    for entry in out.journal(JOURNAL_STEM).records():
        if isinstance(entry.get("source"), str) and "audio_filepath" in entry:
            entries[entry["source"]] = entry
    return entries


def _is_current(
    entry: Entry | None, job: _Job, output_size: Callable[[str], int | None], options
) -> bool:
    if entry is None or entry.get("audio_filepath") != job.out_rel:
        return False
    if entry.get("convert_params") != options.output_params():
        return False
    try:
        stat = _stat_fields(location(job.source.path))
    except OSError:
        return False
    if {k: entry.get(k) for k in ("source_size", "source_mtime_ns")} != stat:
        return False
    return output_size(job.out_rel) == entry.get("file_size")


class _Reporter:
    """Logs each source's failure or skip once and moves the progress line: as the journal
    says files finished, and at the end for what it did not say (object storage)."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.reported: set[str] = set()

    def report(self, records: list[Entry]) -> None:
        records = [r for r in records if r.get("source") not in self.reported]
        for record in records:
            self.reported.add(record.get("source"))
            if record.get("status") == "failed":
                log.error("error: %s: %s", record["source"], record["reason"])
            elif record.get("status") == "skipped":
                log.info("skipped: %s: %s", record["source"], record["reason"])
        if self.progress and records:
            self.progress(len(records))


@contextlib.contextmanager
def _reporting(journal: Journal, reporter: _Reporter) -> Iterator[None]:
    """Follow the journal the workers write to: errors are logged and the progress line
    moves as files finish, not when the whole run returns."""
    follower = journal.follower()
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(0.25):
            reporter.report(follower.read_new())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        reporter.report(follower.read_new())


@dataclass
class _SplitFile:
    """A long local file whose parts are spread over the workers (see :mod:`prep.parts`)."""

    job: _Job
    info: AudioInfo
    stat: dict
    tmp: Path
    tasks: list[PartTask]


SPLIT_CANDIDATE_BYTES = 512 << 10
"""Smaller files cannot hold two parts (two minutes) of FLAC or WAV: not even opened."""
SPLIT_CANDIDATE_SUFFIXES = (".flac", ".wav", ".wave", ".aif", ".aiff", ".w64", ".rf64", ".caf")


def _plan_split_files(jobs: list[_Job], out: Path, options: ConvertOptions) -> dict:
    """Main side: the long FLAC and WAV files to convert as parts spread over the
    workers, each with its shared temporary output started.

    Only names that say FLAC or WAV are opened here (a header read each); a long FLAC
    under another name is still converted part by part, in one worker, to the same bytes.
    """
    if options.to != "wav16" or options.decoder not in ("auto", "soundfile"):
        return {}  # FLAC output cannot be written in place; other decoders do not seek
    split = {}
    for job in jobs:
        path = location(job.source.path).local_path
        if path is None or path.suffix.lower() not in SPLIT_CANDIDATE_SUFFIXES:
            continue
        size = source_size(job.source)
        if size < SPLIT_CANDIDATE_BYTES:
            continue
        try:
            reader = SoundfileReader(path)
        except DecodeError:
            continue  # the worker reports it
        reader.close()
        info = reader.info
        plan = plan_parts(info, options.sample_rate)
        if plan is None or _duration_filter(info.duration or 0.0, options):
            continue
        tmp = partial_name(out / job.out_rel)
        start_output(tmp)
        ranges = [plan.input_range(index) for index in range(len(plan))]
        tasks = [
            PartTask(
                *(path, job.source.rel, tmp, plan, index, options.channels, options.quality),
                input_bytes=size * (stop - start) // plan.frames,
            )
            for index, (start, stop) in enumerate(ranges)
        ]
        stat = _stat_fields(location(path))
        split[job.source.rel] = _SplitFile(job, info, stat, tmp, tasks)
    return split


def _work_bytes(item: _Job | PartTask) -> int:
    """An item's share of the input, in bytes, for sizing batches."""
    return item.input_bytes if isinstance(item, PartTask) else source_size(item.source)


def _finish_split_file(
    file: _SplitFile, done: list[PartDone], out: Path, options: ConvertOptions
) -> FileResult:
    """Main side, once every part has reported: header, checks, rename, manifest entry."""
    job = file.job
    rel = job.source.rel
    try:
        written = finish_output(file.tmp, file.tasks[0].plan, done)
        if reason := _duration_filter(written / options.sample_rate, options):
            raise _Skip(reason)
        if _changed(location(job.source.path), file.stat):
            raise DecodeError(CHANGED)
        text = job.source.fields.get("text")
        if text is None:
            text = transcript_for(job.source.path)
        digest, size = file_digest(file.tmp), file.tmp.stat().st_size
        os.replace(file.tmp, out / job.out_rel)
    except (DecodeError, _Skip, OSError) as exc:
        file.tmp.unlink(missing_ok=True)
        if isinstance(exc, _Skip):
            return FileResult(rel, "skipped", reason=str(exc))
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        return FileResult(rel, "failed", reason=reason)
    stat = {**file.stat, "source_sha256": next(d.source_sha256 for d in done if d.index == 0)}
    entry = _entry(job.source, job.out_rel, file.info, written, digest, size, stat, options, text)
    return FileResult(rel, "converted", entry)


def check_paths(src: Path | str | Location, out: Path | str | Location) -> None:
    """Refuse SRC that does not exist, and OUT that overlaps SRC or cannot be written."""
    src = location(src)
    if src.local_path is not None and not src.local_path.exists():
        raise UsageError(f"{src}: no such file or folder")  # a prefix: told when listed
    check_out(out, source_root(src))


def convert(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConvertSummary:
    """Convert every audio file under SRC (or in a SRC manifest) into OUT.

    Writes ``OUT/manifest.jsonl`` (converted files, sorted by source path),
    ``OUT/errors.jsonl`` and ``OUT/skipped.jsonl``; returns the run's summary.
    ``progress`` is called with the number of files finished since its last call.
    """
    options = options or ConvertOptions()
    options.validate()
    src, out = location(src), location(out)
    check_paths(src, out)
    with locked_out(out):
        return _convert_held(src, out, options, progress)


def _convert_held(
    src: Location,
    out: Location,
    options: ConvertOptions,
    progress: Callable[[int], None] | None,
) -> ConvertSummary:
    """The run itself, with OUT held against other runs (:mod:`prep.runlock`)."""
    started = time.perf_counter()
    reporter = _Reporter(progress)

    sources = discover(src, options.extensions)
    results: dict[str, FileResult] = {
        s.rel: FileResult(
            s.rel, "skipped" if s.problem.skipped else "failed", reason=s.problem.reason
        )
        for s in sources
        if s.problem is not None
    }
    reporter.report([_journal_record(r) for r in results.values()])
    sources = [s for s in sources if s.problem is None]
    names = plan_output_names([s.rel for s in sources], TARGETS[options.to][1])
    jobs = [_Job(s, names[s.rel]) for s in sources]
    previous = {} if options.overwrite else _previous_entries(out)
    output_size = out.size_lookup()

    summary = ConvertSummary()
    found_done = len(results)
    todo = []
    for job in jobs:
        entry = previous.get(job.source.rel)
        if _is_current(entry, job, output_size, options):
            reason = _duration_filter(entry["duration"], options)
            results[job.source.rel] = (
                FileResult(job.source.rel, "skipped", reason=reason)
                if reason
                else FileResult(job.source.rel, "done", entry)
            )
        else:
            todo.append(job)
    if progress and len(results) > found_done:
        progress(len(results) - found_done)
    reporter.reported.update(results)  # counted above; a rerun does not tell them again

    journal = out.journal(JOURNAL_STEM)
    local_out = out.local_path  # parts are written in place: a file system only
    split = {} if local_out is None else _plan_split_files(todo, local_out, options)
    items = [job for job in todo if job.source.rel not in split]
    items += [task for file in split.values() for task in file.tasks]
    with (
        Workers(options.jobs, options.backend, options.scheduler) as workers,
        _reporting(journal, reporter),
    ):
        batch_results = workers.run(
            _convert_batch,
            batch_by_size(items, _work_bytes, workers.count),
            out_root=out,
            journal=journal,
            options=options,
        )
        parts_done: dict[str, list[PartDone]] = {rel: [] for rel in split}
        for result in (r for batch in batch_results for r in batch):
            if isinstance(result, PartDone):
                parts_done[result.rel].append(result)
            else:
                results[result.rel] = result
        if split:
            with journal.writer("\n".join(split)) as appender:
                for rel, file in split.items():
                    results[rel] = _finish_split_file(file, parts_done[rel], local_out, options)
                    appender.append(_journal_record(results[rel]))
    reporter.report([_journal_record(r) for r in results.values() if r.status != "done"])

    entries, errors, skipped = [], [], []
    source_of = {s.rel: s for s in sources}
    for rel in sorted(results):
        result = results[rel]
        if result.status in ("converted", "done"):
            lines, line_errors, line_skips = _line_entries(result.entry, source_of[rel], options)
            entries += lines
            errors += line_errors
            skipped += line_skips
            summary.failed += len(line_errors)
            summary.skipped += len(line_skips)
            summary.audio_seconds += sum(e["duration"] for e in lines)
            file_seconds = result.entry.get("file_num_samples", result.entry["num_samples"])
            if result.status == "converted":
                summary.converted += 1
                summary.converted_seconds += file_seconds / options.sample_rate
            else:
                summary.already_done += 1
        elif result.status == "failed":
            summary.failed += 1
            errors.append({"source": rel, "reason": result.reason})
        else:
            summary.skipped += 1
            skipped.append({"source": rel, "reason": result.reason})
    for name, records in ((MANIFEST, entries), (ERRORS, errors), (SKIPPED, skipped)):
        out.join(name).write_manifest(records)
    journal.clear()
    summary.errors = errors
    summary.wall_seconds = time.perf_counter() - started
    return summary
