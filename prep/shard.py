"""``prep shard``: presplit segments, log-mel, WebDataset shards, HDF5 and memmap in one pass.

Pass 1 (parallel): each source is decoded once, cut into items, its mel computed, the
per-item formats (``segments``, ``mel``) written directly, and the items staged for the
aggregate formats. Pass 2 (this process): the staged items, in a deterministic order,
become WebDataset shards, one HDF5 file and one memmap. Every output is written under a
temporary name and renamed; a format whose ``format.json`` matches this run is skipped.
The formats are the writers registered in :mod:`prep.writers`: this module asks each
writer what it is (per item or aggregate, with mel, ...), never a format's name.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import soundfile as sf

from loaders.audio.dsp import concat, iter_mono, to_int16
from loaders.audio.errors import DecodeError
from loaders.audio.quiet import quiet_native_stderr
from loaders.audio.registry import open_audio
from loaders.audio.sniff import not_a_file_reason, wav_missing_bytes
from loaders.mel_storage import MEL_DTYPES, to_storage
from manifests import Entry, naming
from prep import storage
from prep.errors import RunError, UsageError
from prep.parallel import Workers, batch_by_size, check_backend
from prep.paths import check_out
from prep.runlock import locked_out
from prep.segmenting import LAST_POLICIES, Span, item_key, min_samples, plan_spans
from prep.sources import Source, SourceError, discover, is_manifest, source_root, source_size
from prep.storage import Location
from prep.utterances import SpanError, line_span
from prep.writers import ItemMeta, StagedRows, get_writer, writer_names
from prep.writers.base import FormatWriter
from prep.writers.files import save_npy

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STAGING = ".staging"
ERRORS = "errors.jsonl"


LOG_SCALES = ("natural", "db")  # as loaders.mel.LogMel
MEL_DEFAULTS = {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80,
                "f_min": 0.0, "f_max": 8000.0, "log": "natural"}  # fmt: skip


def empty_mel_bands(mel: dict) -> bool:
    """Whether torchaudio's HTK mel filterbank of these settings has an all-zero filter
    (its own warning): such a band is a constant row, not a feature."""
    n_freqs = mel["n_fft"] // 2 + 1
    freqs = np.linspace(0, mel["sample_rate"] // 2, n_freqs)
    lo, hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (mel["f_min"], mel["f_max"]))
    points = 700.0 * (10 ** (np.linspace(lo, hi, mel["n_mels"] + 2) / 2595.0) - 1.0)
    widths = np.diff(points)
    slopes = points[None, :] - freqs[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        down = -slopes[:, :-2] / widths[:-1]
        up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    return bool((np.nan_to_num(bank).max(axis=0) == 0).any())


@dataclass(frozen=True)
class ShardOptions:
    formats: tuple[str, ...] = ("segments",)
    sample_rate: int = 16000
    segment: int | None = None
    hop: int | None = None
    last: str = "pad"
    min_last: float = 0.0
    mel: dict = field(default_factory=dict)
    mel_dtype: str = "float32"
    shard_size: int | None = None
    shard_bytes: int | None = None
    shuffle_seed: int = 0
    codec: str = "wav"
    hdf5_compression: str = "none"
    jobs: int = 0
    overwrite: bool = False
    backend: str = "local"
    scheduler: str | None = None

    @property
    def fixed_length(self) -> bool:
        return self.segment is not None and self.last in ("pad", "drop")

    @property
    def wants_mel(self) -> bool:
        """Whether a chosen format computes mel (then every format that carries it has it)."""
        return any(get_writer(name).computes_mel for name in self.formats)

    def validate(self) -> None:
        """Every option alone and together, before any work; library callers included.
        Each registered format's writer checks its own options, chosen or not."""
        names = writer_names()
        unknown = [f for f in self.formats if f not in names]
        if unknown or not self.formats:
            raise UsageError(
                f"unknown --format {','.join(unknown)!r} (choose from {', '.join(names)})"
            )
        if not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"--sr {self.sample_rate} is not a usable sample rate (1000-384000)")
        if self.last not in LAST_POLICIES:
            raise UsageError(f"--last must be one of {', '.join(LAST_POLICIES)}")
        if not 0.0 <= self.min_last <= 1.0:
            raise UsageError("--min-last is a fraction of a segment, between 0 and 1")
        if self.hop is not None and self.segment is None:
            raise UsageError("--hop needs --segment")
        for name in ("segment", "hop"):
            value = getattr(self, name)
            if value is not None and value < min_samples(self.sample_rate):
                raise UsageError(f"--{name} of {value} samples is shorter than 10 ms")
        for name in self.formats:
            if get_writer(name).needs_fixed_length and not self.fixed_length:
                raise UsageError(
                    f"{name} needs fixed-length items: --segment with --last pad or drop"
                )
        for name in names:
            get_writer(name).validate(self)
        if self.mel_dtype not in MEL_DTYPES:
            raise UsageError(f"--mel-dtype must be one of {', '.join(MEL_DTYPES)}")
        if self.wants_mel or self.mel:
            self._validate_mel()
        check_backend(self.backend, self.scheduler)
        if self.jobs < 0:
            raise UsageError("--jobs must be 0 (all cores) or more")

    def _validate_mel(self) -> None:
        mel = {**MEL_DEFAULTS, **self.mel}
        if mel["sample_rate"] != self.sample_rate:
            raise UsageError("the mel sample rate must be --sr")
        for name in ("n_mels", "n_fft", "hop_length"):
            if not isinstance(mel[name], int) or mel[name] < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be a whole number, 1 or more")
        nyquist = self.sample_rate / 2
        f_min, f_max = mel["f_min"], mel["f_max"]
        if not 0 <= f_min < f_max <= nyquist:
            raise UsageError(
                f"mel band --f-min {f_min:g} --f-max {f_max:g} Hz: need 0 <= f-min < f-max <= "
                f"{nyquist:g} (half of --sr {self.sample_rate})"
            )
        if mel["log"] not in LOG_SCALES:
            raise UsageError(f"--log must be one of {', '.join(LOG_SCALES)}")
        if empty_mel_bands(mel):
            raise UsageError(
                f"--n-mels {mel['n_mels']} over {f_min:g}-{f_max:g} Hz with --n-fft "
                f"{mel['n_fft']} leaves mel bands with no FFT bin in them (rows of nothing): "
                "lower --n-mels or raise --n-fft"
            )
        if self.wants_mel and self.segment is not None and self.segment <= mel["n_fft"] // 2:
            raise UsageError(
                f"--segment of {self.segment} samples is too short for a mel with --n-fft "
                f"{mel['n_fft']} (needs more than {mel['n_fft'] // 2})"
            )

    def format_params(self, name: str) -> dict:
        """What a format's files depend on: stored in its format.json, compared on rerun."""
        params: dict = {
            "sample_rate": self.sample_rate,
            "segment_samples": self.segment,
            "hop_samples": (self.hop or self.segment) if self.segment else None,
            "last": self.last,
            "min_last": self.min_last,
        }
        writer = get_writer(name)
        if self.wants_mel and writer.carries_mel:
            params["mel"] = dict(self.mel)
            params["mel_dtype"] = self.mel_dtype
        params.update(writer.params(self))
        return params


@dataclass(frozen=True)
class ShardSource:
    """One input: its file, the ``source`` name carried into every item, its fields, and
    the ``offset``/``duration`` its manifest line gave (its span of the file; none for
    a whole file). Several inputs may name one file: each is an utterance of it."""

    path: Path
    source: str
    fields: dict
    span_fields: dict = field(default_factory=dict)
    problem: str | None = None
    """Why the folder walk could not use it (prep.sources): an error line, never decoded."""


def _from_entry(path: Path | str, entry: Entry) -> ShardSource:
    return ShardSource(
        path,
        entry.get("source", entry["audio_filepath"]),
        {k: entry[k] for k in ("text", "label") if k in entry},
        {k: entry[k] for k in ("offset", "duration") if k in entry},
    )


def read_inputs(src: Path | str | Location) -> list[ShardSource]:
    """A ``prep convert`` folder (its manifest), a manifest, or any folder of audio."""
    src = storage.location(src)
    if src.local_path is None:  # a prefix: its manifest object, else every audio object
        entries = list(src.join("manifest.jsonl").iter_manifest())
        if not entries:
            return [_walked(s) for s in discover(src)]
        return sorted(
            (_from_entry(src.join(e["audio_filepath"]).path, e) for e in entries),
            key=lambda s: s.source,
        )
    src = src.local_path
    manifest = src / "manifest.jsonl" if src.is_dir() else src
    if src.is_dir() and not manifest.exists():
        return [_walked(s) for s in discover(src)]
    if not manifest.exists() or not (src.is_dir() or is_manifest(src)):
        raise SourceError(f"{src}: no such folder or .jsonl manifest")
    inputs = (one for source in discover(manifest) for one in _line_inputs(source))
    return sorted(inputs, key=lambda s: s.source)


def _walked(source: Source) -> ShardSource:
    problem = source.problem.reason if source.problem is not None else None
    return ShardSource(source.path, source.rel, source.fields, problem=problem)


def _line_inputs(source: Source) -> list[ShardSource]:
    """A manifest's file as inputs: one per line naming it (each an utterance, with the
    ``source`` a ``prep convert`` manifest records, else the file's own name)."""
    if source.problem is not None or not source.utterances:
        return [_walked(source)]
    return [
        _from_entry(source.path, {"audio_filepath": source.rel, **line.fields})
        for line in source.utterances
    ]


def input_fingerprint(sources: list[ShardSource]) -> str:
    """Changes when any input file changes (size or mtime), is added or removed."""
    digest = hashlib.sha256()
    for s in sources:
        try:
            size, mtime_ns = storage.location(s.path).stat()
            digest.update(f"{s.source}\0{size}\0{mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{s.source}\0missing\n".encode())
    return digest.hexdigest()


def load_int16(path: Path | str, sample_rate: int) -> np.ndarray:
    """Mono int16 at ``sample_rate``: read as is when it already is (a ``prep convert``
    output, bit for bit), else decoded and resampled through the convert code path.
    An object URL is fetched into memory first."""
    path = storage.location(path).decoder_input()  # an object: its bytes
    if isinstance(path, Path) and (reason := not_a_file_reason(os.stat(path).st_mode)):
        raise DecodeError(reason)  # a FIFO would block the read below forever
    try:
        with sf.SoundFile(io.BytesIO(path) if isinstance(path, bytes) else path) as f:
            if f.channels == 1 and f.subtype == "PCM_16" and f.samplerate == sample_rate:
                if f.format == "WAV" and (missing := wav_missing_bytes(path)):
                    raise DecodeError(f"truncated: {missing} bytes of its data are missing")
                return f.read(dtype="int16")
    except sf.LibsndfileError:
        pass
    with open_audio(path) as reader:
        return to_int16(concat(iter_mono(reader, sample_rate)))


@functools.cache
def _logmel(config_json: str, threads: int):
    import torch

    from loaders.mel import LogMel

    if threads:
        torch.set_num_threads(threads)
    return LogMel(**json.loads(config_json)).eval()


def _compute_mels(rows: list[np.ndarray], options: ShardOptions, threads: int) -> list[np.ndarray]:
    import torch

    module = _logmel(json.dumps(options.mel, sort_keys=True), threads)
    with torch.inference_mode():
        if len({len(r) for r in rows}) == 1:
            return list(module(torch.from_numpy(np.stack(rows))).numpy())
        return [module(torch.from_numpy(r)).numpy() for r in rows]


def _utterance(src: ShardSource, samples: np.ndarray, sr: int) -> tuple[np.ndarray, str, int]:
    """The samples one input's manifest line names, the name its item keys are made from,
    and where those samples start in the file. A whole file keeps its plain keys; a span
    adds its place, so the utterances of one file never share a key."""
    span = line_span(src.span_fields, len(samples), sr) if src.span_fields else None
    if span is None:
        return samples, src.source, 0
    stop = span.start + span.length
    return samples[span.start : stop], f"{src.source}@{span.start}+{span.length}", span.start


def _pad(samples: np.ndarray, start: int, length: int, options: ShardOptions) -> np.ndarray:
    row = samples[start : start + length]
    if options.last == "pad" and options.segment and length < options.segment:
        row = np.concatenate([row, np.zeros(options.segment - length, dtype=np.int16)])
    return np.ascontiguousarray(row)


TEXT_DROPPED = "segments cut from longer transcribed files; no word timings"


def write_failure(exc: OSError, path: Path | str) -> str:
    """One line for an OS error met writing ``path`` (a write() error names no file;
    HDF5 buries the errno in a paragraph of its own)."""
    found = re.search(r"errno = (\d+)", str(exc))
    if found:
        reason = os.strerror(int(found.group(1)))
    else:
        reason = " ".join(str(exc.strerror or exc).split())
    return f"cannot write {exc.filename or path}: {reason}"


def _too_short_for_mel(rows: list[np.ndarray], options: ShardOptions) -> str | None:
    """The reason a file's items cannot have a mel (torch's reflect padding needs more than
    half an FFT), or None."""
    n_fft = options.mel.get("n_fft", MEL_DEFAULTS["n_fft"])
    shortest = min(len(r) for r in rows)
    if shortest > n_fft // 2:
        return None
    return (
        f"an item of {shortest} samples is too short for a mel with --n-fft {n_fft} "
        f"(needs more than {n_fft // 2}; --min-last or --last drop leaves such tails out)"
    )


def _source_items(
    src: ShardSource,
    samples: np.ndarray,
    out: Path,
    options: ShardOptions,
    item_writers: tuple[FormatWriter, ...],
    threads: int,
    key_source: str,
    first: int,
) -> tuple[list[ItemMeta], list[np.ndarray], list[np.ndarray | None]] | str:
    """One input's items (a whole file's, or one utterance's whose samples start at ``first``
    in the file), written to the per-item formats; or why it yields none."""
    sr = options.sample_rate
    spans = plan_spans(len(samples), options.segment, options.hop, options.last, options.min_last)
    if not spans:
        return (
            f"no item: {len(samples) / sr:.3f} s of audio is shorter than the --segment "
            f"with --last {options.last}"
            + (f" and --min-last {options.min_last:g}" if options.min_last else "")
        )
    rows = [_pad(samples, s.start, s.length, options) for s in spans]
    if options.wants_mel:
        reason = _too_short_for_mel(rows, options)
        if reason:
            return reason
        mels = _compute_mels(rows, options, threads)
    else:
        mels = [None] * len(rows)
    # a transcript belongs to the whole file (or utterance): a part does not hold all its words
    whole = spans == [Span(0, len(samples))]
    fields = dict(src.fields)
    text_dropped = "text" in fields and not whole
    if text_dropped:
        del fields["text"]
    metas, stored_mels = [], []
    for index, (span, row, mel) in enumerate(zip(spans, rows, mels, strict=True)):
        stored_mel, mel_fields = (None, {}) if mel is None else to_storage(mel, options.mel_dtype)
        meta = ItemMeta(
            key=item_key(key_source, index),
            source=src.source,
            index=index,
            start=first + span.start,
            num_samples=span.length,
            stored_samples=len(row),
            sample_rate=sr,
            fields=dict(fields),
            mel_fields=mel_fields,
            mel_shape=None if stored_mel is None else tuple(stored_mel.shape),
            text_dropped=text_dropped,
        )
        for writer in item_writers:
            folder = out / writer.name
            try:
                meta.hashes[writer.name] = writer.write_item(folder, meta, row, stored_mel, options)
            except OSError as exc:
                target = folder / writer.relative_path(meta)
                return write_failure(exc, target)
        metas.append(meta)
        stored_mels.append(stored_mel)
    return metas, rows, stored_mels


def _shard_batch(
    sources: list[ShardSource],
    out: Path,
    staging: Path,
    options: ShardOptions,
    item_writers: tuple[FormatWriter, ...],
    stage: bool,
    threads: int,
) -> tuple[list[ItemMeta], list[Entry]]:
    """Worker side: decode each source once, cut it, write per-item files, stage the rest.

    A file that cannot be read, cut or written is one line in the errors, and none of its
    items is kept; the other files go on."""
    items, errors, audio_parts, mel_parts = [], [], [], []
    audio_at = mel_at = 0
    # Unique, not derived from the sources: the utterances of one file share a source, and
    # two batches of them must never stage into one file.
    batch_name = uuid.uuid4().hex
    sr = options.sample_rate
    decoded: tuple[Path | str, np.ndarray] | None = None  # utterances of one file: one decode
    with quiet_native_stderr():
        for src in sources:
            if src.problem is not None:
                errors.append({"source": src.source, "reason": src.problem})
                continue
            try:
                if decoded is None or decoded[0] != src.path:
                    decoded = None
                    decoded = (src.path, load_int16(src.path, sr))
                samples, key_source, first = _utterance(src, decoded[1], sr)
            except DecodeError as exc:
                errors.append({"source": src.source, "reason": str(exc)})
                continue
            except OSError as exc:
                errors.append({"source": src.source, "reason": exc.strerror or str(exc)})
                continue
            except SpanError as exc:
                errors.append({"source": src.source, "reason": f"manifest entry: {exc}"})
                continue
            result = _source_items(
                src, samples, out, options, item_writers, threads, key_source, first
            )
            if isinstance(result, str):
                errors.append({"source": src.source, "reason": result})
                continue
            metas, rows, stored_mels = result
            for meta, row, stored_mel in zip(metas, rows, stored_mels, strict=True):
                if stage:
                    meta.staged = batch_name
                    meta.audio_at, meta.mel_at = audio_at, mel_at
                    audio_parts.append(row)
                    audio_at += len(row)
                    if stored_mel is not None:
                        mel_parts.append(stored_mel.ravel())
                        mel_at += stored_mel.size
                items.append(meta)
    if stage and audio_parts:
        target = staging / f"{batch_name}.audio.npy"
        try:
            save_npy(target, np.concatenate(audio_parts))
            if mel_parts:
                target = staging / f"{batch_name}.mel.npy"
                save_npy(target, np.concatenate(mel_parts))
        except OSError as exc:  # every file of the batch loses its staged items
            reason = write_failure(exc, target)
            for name in (f"{batch_name}.audio.npy", f"{batch_name}.mel.npy"):
                (staging / name).unlink(missing_ok=True)  # room for the others
            failed = sorted({m.source for m in items})
            errors += [{"source": source, "reason": reason} for source in failed]
            items = []
    return items, errors


def _unique_items(items: Iterable[ItemMeta]) -> tuple[list[ItemMeta], list[Entry]]:
    """Items in a deterministic order (source, place in the file, index: not the order the
    batches came back in), each key once; a repeat (two manifest lines naming one span)
    is reported, never written twice."""
    unique, duplicates, seen = [], [], set()
    for meta in sorted(items, key=lambda m: (m.source, m.start, m.index, m.key)):
        if meta.key in seen:
            reason = f"item {meta.key} is listed twice (two manifest lines name one span)"
            duplicates.append({"source": meta.source, "reason": reason})
            continue
        seen.add(meta.key)
        unique.append(meta)
    return unique, duplicates


@dataclass
class ShardSummary:
    sources: int = 0
    items: int = 0
    audio_seconds: float = 0.0
    failed: int = 0
    done_formats: list[str] = field(default_factory=list)
    written_formats: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    errors: list[Entry] = field(default_factory=list)

    text_dropped: int = 0

    def line(self) -> str:
        if self.written_formats:
            parts = [
                f"{_count(self.sources, 'source')} -> {_count(self.items, 'item')} "
                f"({_span_text(self.audio_seconds)})"
            ]
        elif self.done_formats:
            parts = [f"{_count(self.sources, 'source')}; nothing to write"]
        else:
            parts = [f"{_count(self.sources, 'source')} -> no item; no format written"]
        parts += [f"{name}: {text}" for name, text in self.written_formats.items()]
        if self.text_dropped:
            parts.append(f"text left off {_count(self.text_dropped, 'item')} ({TEXT_DROPPED})")
        if self.done_formats:
            parts.append(f"already complete: {', '.join(self.done_formats)}")
        parts.append(f"failed {self.failed}; {self.wall_seconds:.1f} s wall")
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _span_text(seconds: float) -> str:
    """Audio time at a scale that does not round a small set to nothing."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _read_format_json(folder: Location) -> dict | None:
    """A format.json as a dict; None (with a warning) when it is not one: the format is
    then treated as not done and rebuilt."""
    path = folder.join("format.json")
    try:
        existing = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
        log.warning("%s: %s; rebuilding %s", path, reason, folder.name)
        return None
    if not isinstance(existing, dict):
        log.warning("%s: not a JSON object; rebuilding %s", path, folder.name)
        return None
    return existing


class FormatState(StrEnum):
    """Where a requested format stands before a run writes it."""

    DONE = "done"
    """Its format.json matches this run's settings and inputs: left as it is."""
    TODO = "todo"
    """To be written (what cannot be reused cleared)."""


def _format_state(folder: Location, params: dict, fingerprint: str, overwrite: bool) -> FormatState:
    """Done (format.json matches), or to do after clearing what cannot be reused.

    ``.params.json`` marks a format being written: a run interrupted with the same
    settings leaves files the next one reuses; one with other settings is cleared."""
    fmt_file, params_file = folder.join("format.json"), folder.join(".params.json")
    wanted = json.dumps({"params": params, "input": fingerprint}, sort_keys=True)
    if overwrite:
        folder.remove()
    if fmt_file.exists():
        existing = _read_format_json(folder) or {}
        found = json.dumps(
            {"params": existing.get("params"), "input": existing.get("input")}, sort_keys=True
        )
        if found == wanted:
            return FormatState.DONE
        folder.remove()  # made from other inputs or settings, or unreadable: rebuilt
    elif params_file.exists() and _bytes_or_none(params_file) != wanted.encode("utf-8"):
        folder.remove()  # an interrupted run with other settings
    with naming(params_file.path):
        params_file.write_bytes(wanted.encode("utf-8"))
    return FormatState.TODO


def _bytes_or_none(where: Location) -> bytes | None:
    try:
        return where.read_bytes()
    except OSError:
        return None


def remote_formats() -> tuple[str, ...]:
    """The formats whose writers stream to object storage."""
    return tuple(n for n in writer_names() if get_writer(n).streams_to_object_storage)


def _check_remote_out(out: Location, options: ShardOptions) -> None:
    """Object storage takes streamed shards; the random-access formats need a file system."""
    other = [f for f in options.formats if not get_writer(f).streams_to_object_storage]
    if other:
        raise UsageError(
            f"{', '.join(other)} cannot be written to {out}: only {', '.join(remote_formats())} "
            "shards go to object storage (write the others to a local or shared folder)"
        )
    if options.backend != "local":
        raise UsageError(
            "shards on object storage are written from this machine: use --backend local "
            "(or a shared folder as OUT with --backend dask)"
        )


def _uint8_error(items: list[ItemMeta]) -> float:
    """The largest error uint8 storage adds to any bin: half a quantisation step."""
    steps = [(m.mel_fields["mel_max"] - m.mel_fields["mel_min"]) / 255 for m in items]
    return round(max(steps, default=0.0) / 2, 6)


def _common_fields(meta: ItemMeta) -> Entry:
    sr = meta.sample_rate
    entry: Entry = {
        "key": meta.key,
        "source": meta.source,
        "offset": round(meta.start / sr, 6),
        "duration": round(meta.num_samples / sr, 6),
        "num_samples": meta.num_samples,
    }
    entry.update(meta.fields)
    return entry


def _input_folders(src: Location, sources: list[ShardSource]) -> tuple[Location, set]:
    """SRC's own folder (a manifest's folder), and the folders the listed audio is in."""
    return source_root(src), {storage.location(s.path).parent for s in sources}


def shard(
    src: str | os.PathLike[str], out: str | os.PathLike[str], options: ShardOptions
) -> ShardSummary:
    """Turn a converted set (or any audio) into the requested training formats under OUT."""
    options.validate()
    started = time.perf_counter()
    src, out = storage.location(src), storage.location(out)
    if src.local_path is not None and not src.local_path.exists():
        raise SourceError(f"{src}: no such file or folder")  # a prefix: told when listed
    if out.local_path is None:
        _check_remote_out(out, options)
    sources = read_inputs(src)
    if not sources:
        raise SourceError(f"{src}: no audio files to shard")
    root, folders = _input_folders(src, sources)
    check_out(out, root, folders)
    with locked_out(out):
        return _shard_held(out, options, sources, started)


def _shard_held(
    out: Location, options: ShardOptions, sources: list[ShardSource], started: float
) -> ShardSummary:
    """The run itself, with OUT held against other runs (:mod:`prep.runlock`)."""
    fingerprint = input_fingerprint(sources)
    staging = None
    where: Location | Path = out  # what was being written, for a one-line OS error
    try:
        states = {}
        for name in options.formats:
            where = out.join(name)
            states[name] = _format_state(
                where, options.format_params(name), fingerprint, options.overwrite
            )
        summary = ShardSummary(sources=len(sources))
        summary.done_formats = [n for n, s in states.items() if s is FormatState.DONE]
        todo = [n for n, s in states.items() if s is FormatState.TODO]
        if not todo:  # nothing to write; the last run's failures still stand
            summary.errors = list(out.join(ERRORS).iter_manifest())
            summary.failed = len(summary.errors)
            summary.wall_seconds = time.perf_counter() - started
            return summary

        # beside the outputs (workers on a shared folder see it), or on this machine
        staging = where = out.scratch(STAGING)
        items, errors = _run_workers(sources, out.path, staging, options, todo)
        summary.text_dropped = sum(m.text_dropped for m in items)
        rows = StagedRows(staging)
        for name in todo if items else []:  # no item at all: no empty set marked complete
            where = out.join(name)
            summary.written_formats[name] = _write_format(
                name, where, items, rows, options, fingerprint
            )
        rows.close()
        shutil.rmtree(staging, ignore_errors=True)
        where = out.join(ERRORS)
        with naming(where.path):
            where.write_manifest(errors)
    except OSError as exc:
        raise RunError(write_failure(exc, where)) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    summary.items = len(items)
    summary.audio_seconds = sum(m.num_samples for m in items) / options.sample_rate
    summary.failed = len(errors)
    summary.errors = errors
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _run_workers(
    sources: list[ShardSource], out: Path, staging: Path, options: ShardOptions, todo: list[str]
) -> tuple[list[ItemMeta], list[Entry]]:
    """Pass 1 over every source; the items in a deterministic order and the failures."""
    writers = [get_writer(n) for n in todo]
    item_writers = tuple(w for w in writers if w.per_item)
    aggregate = [w for w in writers if not w.per_item]
    with Workers(options.jobs, options.backend, options.scheduler) as workers:
        results = workers.run(
            _shard_batch,
            batch_by_size(sources, source_size, workers.count),
            out=out,
            staging=staging,
            options=options,
            item_writers=item_writers,
            stage=bool(aggregate),
            threads=1 if workers.remote or min(workers.count, len(sources)) > 1 else 0,
        )
    items, duplicates = _unique_items(m for batch, _ in results for m in batch)
    errors = sorted(
        (e for _, batch_errors in results for e in batch_errors),
        key=lambda e: (e["source"], e["reason"]),
    )
    return items, errors + duplicates


def _write_format(
    name: str,
    folder: Location,
    items: list[ItemMeta],
    rows: StagedRows,
    options: ShardOptions,
    fingerprint: str,
) -> str:
    """Pass 2 for one format: its aggregate files, manifest and format.json; its summary."""
    writer = get_writer(name)
    if writer.per_item:
        locations = [{**writer.location(m), "sha256": m.hashes[name]} for m in items]
        written = None
    else:
        written = writer.write_all(folder.path, items, rows, options)
        locations = written.locations
    entries = []
    for meta, location in zip(items, locations, strict=True):
        entry = _common_fields(meta)
        entry.update(location)
        if writer.carries_mel:
            entry.update(meta.mel_fields)
        entries.append(entry)
    manifest = folder.join("manifest.jsonl")
    with naming(manifest.path):
        manifest.write_manifest(entries)
    params = options.format_params(name)
    text = _count(len(items), "item")
    extra: dict = {}
    if written is not None:
        extra = {**written.fields, "files": written.files}
        text = written.summary or text
    if options.wants_mel and options.mel_dtype == "uint8" and "mel" in params:
        extra["mel_uint8_max_error"] = _uint8_error(items)
    dropped = sum(m.text_dropped for m in items)
    if dropped:
        extra.update(text_dropped=TEXT_DROPPED, text_dropped_items=dropped)
    fmt = {
        "format": name,
        "version": FORMAT_VERSION,
        **params,
        "num_items": len(items),
        **extra,
        "params": params,
        "input": fingerprint,
    }
    fmt_text = json.dumps(fmt, indent=2) + "\n"
    fmt_file = folder.join("format.json")
    with naming(fmt_file.path):
        fmt_file.write_bytes(fmt_text.encode("utf-8"))
    folder.join(".params.json").remove()
    return text


__all__ = ["ShardOptions", "ShardSummary", "shard"]
