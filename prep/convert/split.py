"""Main side of a long FLAC or WAV converted as parts spread over the workers
(:mod:`prep.parts` converts the parts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loaders.audio.base import AudioInfo
from loaders.audio.errors import DecodeError
from loaders.audio.registry import decoder_named
from manifests import partial_name
from prep.convert.one_file import CHANGED, changed, file_entry, stat_fields
from prep.convert.options import ConvertOptions, duration_filter
from prep.convert.outcomes import FileResult, Job, Outcome, Skip
from prep.errors import os_reason
from prep.parts import (
    PART_SECONDS,
    PartDone,
    PartTask,
    finish_output,
    plan_parts,
    start_output,
)
from prep.sources import source_size, transcript_for
from prep.storage import file_digest, location


@dataclass
class SplitFile:
    """A long local file whose parts are spread over the workers (see :mod:`prep.parts`)."""

    job: Job
    info: AudioInfo
    stat: dict
    tmp: Path
    tasks: list[PartTask]


SPLIT_CANDIDATE_BYTES = 512 << 10
"""Smaller files cannot hold two default parts (two minutes) of FLAC or WAV: not even
opened. Shorter parts lower it in proportion (:func:`split_candidate_bytes`)."""
SPLIT_CANDIDATE_SUFFIXES = (".flac", ".wav", ".wave", ".aif", ".aiff", ".w64", ".rf64", ".caf")


def split_candidate_bytes(part_seconds: float) -> int:
    """The smallest source worth opening to plan parts of ``part_seconds``."""
    return int(SPLIT_CANDIDATE_BYTES * min(1.0, part_seconds / PART_SECONDS))


def plan_split_files(jobs: list[Job], out: Path, options: ConvertOptions) -> dict:
    """Main side: the long FLAC and WAV files to convert as parts spread over the
    workers, each with its shared temporary output started.

    Only names that say FLAC or WAV are opened here (a header read each); a long FLAC
    under another name is still converted part by part, in one worker, to the same bytes.
    """
    splitter = decoder_named(options.decoder).range_decoder()
    if options.to != "wav16" or splitter is None:
        return {}  # FLAC output cannot be written in place; other decoders do not seek
    split = {}
    for job in jobs:
        path = location(job.source.path).local_path
        if path is None or path.suffix.lower() not in SPLIT_CANDIDATE_SUFFIXES:
            continue
        size = source_size(job.source)
        if size < split_candidate_bytes(options.part_seconds):
            continue
        try:
            reader = splitter.open(path)
        except DecodeError:
            continue  # the worker reports it
        reader.close()
        info = reader.info
        plan = plan_parts(info, options.sample_rate, options.part_seconds)
        if plan is None or duration_filter(info.duration or 0.0, options):
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
        stat = stat_fields(location(path))
        split[job.source.rel] = SplitFile(job, info, stat, tmp, tasks)
    return split


def work_bytes(item: Job | PartTask) -> int:
    """An item's share of the input, in bytes, for sizing batches."""
    return item.input_bytes if isinstance(item, PartTask) else source_size(item.source)


def finish_split_file(
    file: SplitFile, done: list[PartDone], out: Path, options: ConvertOptions
) -> FileResult:
    """Main side, once every part has reported: header, checks, rename, manifest entry."""
    job = file.job
    rel = job.source.rel
    note = f"decoder {file.info.decoder}, split into {len(file.tasks)} parts over the workers"
    try:
        written = finish_output(file.tmp, file.tasks[0].plan, done)
        if reason := duration_filter(written / options.sample_rate, options):
            raise Skip(reason)
        if changed(location(job.source.path), file.stat):
            raise DecodeError(CHANGED)
        text = job.source.fields.get("text")
        if text is None:
            text = transcript_for(job.source.path)
        digest, size = file_digest(file.tmp), file.tmp.stat().st_size
        os.replace(file.tmp, out / job.out_rel)
    except (DecodeError, Skip, OSError) as exc:
        file.tmp.unlink(missing_ok=True)
        if isinstance(exc, Skip):
            return FileResult(rel, Outcome.SKIPPED, reason=str(exc), note=note)
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        return FileResult(rel, Outcome.FAILED, reason=reason, note=note)
    stat = {**file.stat, "source_sha256": next(d.source_sha256 for d in done if d.index == 0)}
    entry = file_entry(
        job.source, job.out_rel, file.info, written, digest, size, stat, options, text
    )
    return FileResult(rel, Outcome.CONVERTED, entry, note=note)
