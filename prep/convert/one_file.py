"""One file's conversion: decode, mix down, resample in blocks, write whole or not at all,
and the manifest entry that describes the output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from loaders.audio.base import AudioInfo, AudioReader
from loaders.audio.dsp import iter_mono, resampler_version, to_int16
from loaders.audio.errors import DecodeError
from loaders.audio.registry import open_audio
from manifests import Entry
from prep.convert.options import TARGETS, ConvertOptions, duration_filter
from prep.convert.outcomes import Skip
from prep.parts import iter_parts, plan_parts
from prep.pcm import pcm16_writer
from prep.readahead import read_ahead
from prep.sources import Source, transcript_for
from prep.storage import Location, file_digest, location


def stat_fields(where: Location) -> dict:
    size, mtime_ns = where.stat()
    return {"source_size": size, "source_mtime_ns": mtime_ns}


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)
"""What ``Path.exists`` takes for "nothing there": the decoder then says why."""


def stat_if_present(where: Location) -> dict:
    try:
        return stat_fields(where)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return {}
        raise


def decoder_note(reader: AudioReader) -> str:
    """Which decoder took a file, and why the ones ``auto`` tried first did not."""
    note = f"decoder {reader.info.decoder}"
    if reader.passed_over:
        note += f" (after {'; '.join(reader.passed_over)})"
    return note


@contextlib.contextmanager
def _output_blocks(
    opened: AudioReader, options: ConvertOptions, notes: list[str]
) -> Iterator[Iterator[np.ndarray]]:
    """The file's output samples, mono float32 at the output rate.

    A long FLAC or WAV goes part by part (:mod:`prep.parts`), exactly as parallel part
    workers would convert it, so its bytes do not depend on how the run was spread;
    anything else is one stream. Either way a long file is decoded a block ahead in a
    thread.
    """
    sr, channels, quality = options.sample_rate, options.channels, options.quality
    plan = plan_parts(opened.info, sr, options.part_seconds)
    if plan is not None:
        notes.append(f"split into {len(plan)} parts")
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
                raise Skip(duration_filter(written / sr, options))
    if reason := duration_filter(written / sr, options):
        raise Skip(reason)
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
    source: Source,
    out_path: Path | str | Location,
    out_rel: str,
    options: ConvertOptions,
    notes: list[str] | None = None,
) -> Entry:
    """Convert one file to ``out_path`` atomically and return its manifest entry.

    What was decided on the way (the decoder, parts) is appended to ``notes``.

    ``source.path`` and ``out_path`` may be object URLs: the object is fetched into memory
    and decoded there; the output is encoded in memory and stored with one PUT.
    Raises :class:`DecodeError` for bad input and :class:`Skip` for filtered files.
    """
    fmt = TARGETS[options.to][0]
    src, out = location(source.path), location(out_path)
    audio_input = src.decoder_input()
    fetched = isinstance(audio_input, bytes)  # in memory: it cannot change under us
    stat = stat_if_present(src)
    if not source.one_whole_file:  # several utterances: filtered one by one (line_entries)
        options = dataclasses.replace(options, min_duration=None, max_duration=None)
    text = source.fields.get("text")
    if text is None and not fetched:  # an object's transcript came with the listing
        text = transcript_for(source.path)  # before any work: a bad one fails the file
    notes = [] if notes is None else notes
    with open_audio(audio_input, options.decoder) as opened:
        info = opened.info
        notes.append(decoder_note(opened))
        if info.duration is not None and (reason := duration_filter(info.duration, options)):
            raise Skip(reason)
        with _output_blocks(opened, options, notes) as blocks:
            written, digest, size = _write_to(blocks, out, fmt, options)
    if stat:  # recorded so `prep verify --sources` can tell a changed source
        stat["source_sha256"] = (
            hashlib.sha256(audio_input).hexdigest() if fetched else file_digest(audio_input)
        )
        if not fetched and changed(src, stat):
            out.remove()  # made from a source that changed under it (never a source)
            raise DecodeError(CHANGED)
    return file_entry(source, out_rel, info, written, digest, size, stat, options, text)


CHANGED = "the file changed while it was being converted"


def changed(where: Location, stat: dict) -> bool:
    """Whether a source's size or mtime differs from ``stat`` (taken before decoding)."""
    try:
        now = stat_fields(where)
    except OSError:
        return True
    return any(now[k] != stat[k] for k in now)


def file_entry(
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
