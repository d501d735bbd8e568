"""Pass 1, in the workers: each input decoded once, cut into items, its mel computed, per-item
formats written, the rest staged.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from loaders.audio.dsp import concat, iter_mono, to_int16
from loaders.audio.errors import DecodeError
from loaders.audio.quiet import quiet_native_stderr
from loaders.audio.registry import open_audio
from loaders.audio.sniff import not_a_file_reason, wav_missing_bytes
from loaders.mel_storage import to_storage
from manifests import Entry
from prep import storage
from prep.segmenting import Span, item_key, plan_spans
from prep.shard.options import MEL_DEFAULTS, ShardOptions
from prep.sources import Source
from prep.utterances import SpanError, line_span
from prep.writers import ItemMeta
from prep.writers.base import FormatWriter
from prep.writers.files import save_npy

PROGRESS = "progress.jsonl"
"""In the staging folder: one line per input as a worker finishes it, which the main
process follows for the progress line and ``-v`` notes (:mod:`prep.shard.run`)."""


def load_int16(path: Path | str, sample_rate: int, notes: list[str] | None = None) -> np.ndarray:
    """Mono int16 at ``sample_rate``: read as is when it already is (a ``prep convert``
    output, bit for bit), else decoded and resampled through the convert code path.
    An object URL is fetched into memory first. How it was read goes to ``notes``."""
    notes = [] if notes is None else notes
    path = storage.location(path).decoder_input()  # an object: its bytes
    if isinstance(path, Path) and (reason := not_a_file_reason(os.stat(path).st_mode)):
        raise DecodeError(reason)  # a FIFO would block the read below forever
    try:
        with sf.SoundFile(io.BytesIO(path) if isinstance(path, bytes) else path) as f:
            if f.channels == 1 and f.subtype == "PCM_16" and f.samplerate == sample_rate:
                if f.format == "WAV" and (missing := wav_missing_bytes(path)):
                    raise DecodeError(f"truncated: {missing} bytes of its data are missing")
                notes.append("read as is (mono 16-bit at the rate)")
                return f.read(dtype="int16")
    except sf.LibsndfileError:
        pass
    with open_audio(path) as reader:
        note = f"decoder {reader.info.decoder}"
        if reader.passed_over:
            note += f" (after {'; '.join(reader.passed_over)})"
        if reader.info.sample_rate != sample_rate:
            note += f", resampled from {reader.info.sample_rate} Hz"
        notes.append(note)
        return to_int16(concat(iter_mono(reader, sample_rate)))


@contextlib.contextmanager
def _progress_journal(staging: Path) -> Iterator[Callable[[Entry], None]]:
    """Something to tell each finished input to, in the staging folder. Best effort: a
    worker that does not see that folder tells nothing (the records also go back with the
    batch's results), and it never creates it."""
    try:
        fd = os.open(staging / PROGRESS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        yield lambda record: None
        return

    def tell(record: Entry) -> None:
        with contextlib.suppress(OSError):
            os.write(fd, (json.dumps(record) + "\n").encode())  # one O_APPEND write: whole

    try:
        yield tell
    finally:
        os.close(fd)


@functools.cache
def _logmel(config_json: str, threads: int):
    """The features' module (:class:`loaders.mel.LogMel` or ``Fbank``), once per process."""
    import torch

    from loaders.mel import feature_module

    if threads:
        torch.set_num_threads(threads)
    return feature_module(json.loads(config_json)).eval()


def _compute_mels(
    rows: list[np.ndarray], options: ShardOptions, threads: int, keys: list[str]
) -> list[np.ndarray]:
    import torch

    config = options.feature_config
    module = _logmel(json.dumps(config, sort_keys=True), threads)
    with torch.inference_mode():
        if config.get("dither"):  # fbank's dither: seeded by the item, so runs repeat
            mels = []
            for key, row in zip(keys, rows, strict=True):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(zlib.crc32(key.encode()))
                    mels.append(module(torch.from_numpy(row)).numpy())
            return mels
        if len({len(r) for r in rows}) == 1:
            return list(module(torch.from_numpy(np.stack(rows))).numpy())
        return [module(torch.from_numpy(r)).numpy() for r in rows]


def _utterance(src: Source, samples: np.ndarray, sr: int) -> tuple[np.ndarray, str, int]:
    """The samples one input's manifest line names, the name its item keys are made from,
    and where those samples start in the file. A whole file keeps its plain keys; a span
    adds its place, so the utterances of one file never share a key."""
    span = line_span(src.utterances[0].fields, len(samples), sr) if src.utterances else None
    if span is None:
        return samples, src.rel, 0
    stop = span.start + span.length
    return samples[span.start : stop], f"{src.rel}@{span.start}+{span.length}", span.start


def _pad(samples: np.ndarray, start: int, length: int, options: ShardOptions) -> np.ndarray:
    row = samples[start : start + length]
    if options.last == "pad" and options.segment and length < options.segment:
        row = np.concatenate([row, np.zeros(options.segment - length, dtype=np.int16)])
    return np.ascontiguousarray(row)


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
    shortest = min(len(r) for r in rows)
    if options.features == "fbank":
        frame = options.feature_config["win_length"]
        if shortest >= frame:
            return None
        return (
            f"an item of {shortest} samples is shorter than one fbank frame ({frame} "
            "samples; --min-last or --last drop leaves such tails out)"
        )
    n_fft = options.mel.get("n_fft", MEL_DEFAULTS["n_fft"])
    if shortest > n_fft // 2:
        return None
    return (
        f"an item of {shortest} samples is too short for a mel with --n-fft {n_fft} "
        f"(needs more than {n_fft // 2}; --min-last or --last drop leaves such tails out)"
    )


def _source_items(
    src: Source,
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
        keys = [item_key(key_source, index) for index in range(len(rows))]
        mels = _compute_mels(rows, options, threads, keys)
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
            source=src.rel,
            index=index,
            start=first + span.start,
            num_samples=span.length,
            stored_samples=len(row),
            sample_rate=sr,
            fields=dict(fields),
            mel_fields=mel_fields,
            mel_shape=None if stored_mel is None else tuple(stored_mel.shape),
            text_dropped=text_dropped,
            path=str(src.path),
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


def _cut_input(
    src: Source,
    decoded: tuple[Path | str, np.ndarray] | None,
    out: Path,
    options: ShardOptions,
    item_writers: tuple[FormatWriter, ...],
    threads: int,
    notes: list[str],
) -> tuple[tuple[Path | str, np.ndarray] | None, tuple | str, float]:
    """One input decoded (or cut from ``decoded``, its file's samples, when the previous
    input was another line of the same file) and cut: the file's samples, its items or
    why it yields none, and its seconds of audio."""
    sr = options.sample_rate
    if src.problem is not None:
        return decoded, src.problem.reason, 0.0
    try:
        if decoded is None or decoded[0] != src.path:
            decoded = None
            decoded = (src.path, load_int16(src.path, sr, notes))
        samples, key_source, first = _utterance(src, decoded[1], sr)
    except DecodeError as exc:
        return decoded, str(exc), 0.0
    except OSError as exc:
        return decoded, exc.strerror or str(exc), 0.0
    except SpanError as exc:
        return decoded, f"manifest entry: {exc}", 0.0
    result = _source_items(src, samples, out, options, item_writers, threads, key_source, first)
    return decoded, result, len(samples) / sr


def shard_batch(
    sources: list[Source],
    out: Path,
    staging: Path,
    options: ShardOptions,
    item_writers: tuple[FormatWriter, ...],
    stage: bool,
    threads: int,
) -> tuple[list[ItemMeta], list[Entry], list[Entry]]:
    """Worker side: decode each source once, cut it, write per-item files, stage the rest.

    A file that cannot be read, cut or written is one line in the errors, and none of its
    items is kept; the other files go on. The third list says what became of each input
    (``id``, ``source``, ``seconds``, ``failed``, ``note``), also told to the staging
    folder's progress journal as each finishes."""
    items, errors, audio_parts, mel_parts, told = [], [], [], [], []
    audio_at = mel_at = 0
    # Unique, not derived from the sources: the utterances of one file share a source, and
    # two batches of them must never stage into one file.
    batch_name = uuid.uuid4().hex
    decoded: tuple[Path | str, np.ndarray] | None = None  # utterances of one file: one decode
    with quiet_native_stderr() as native, _progress_journal(staging) as tell:
        for number, src in enumerate(sources):
            notes: list[str] = []
            decoded, result, seconds = _cut_input(
                src, decoded, out, options, item_writers, threads, notes
            )
            if chatter := native.take():
                notes.append(f"native stderr: {chatter}")
            if isinstance(result, str):
                errors.append({"source": src.rel, "reason": result})
            else:
                metas, rows, stored_mels = result
                notes.append(f"{len(metas)} item{'' if len(metas) == 1 else 's'}")
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
            record = {
                "id": f"{batch_name}/{number}",
                "source": src.rel,
                "seconds": seconds,
                "failed": isinstance(result, str),
                "note": "; ".join(notes),
            }
            told.append(record)
            tell(record)
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
    return items, errors, told


def unique_items(items: Iterable[ItemMeta]) -> tuple[list[ItemMeta], list[Entry]]:
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
