"""``prep shard``: the run: check, hold OUT, pass 1 over the workers, pass 2 per format."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from manifests import Entry, JournalFollower, naming
from prep import storage
from prep.errors import RunError
from prep.parallel import Workers, batch_by_size
from prep.paths import check_out
from prep.progress import Progress, following
from prep.runlock import locked_out
from prep.shard.formats import check_remote_out, write_format
from prep.shard.inputs import input_fingerprint, input_folders, read_inputs
from prep.shard.items import PROGRESS, shard_batch, unique_items, write_failure
from prep.shard.options import ShardOptions
from prep.shard.state import FormatState, format_state
from prep.shard.summary import ShardSummary
from prep.sources import Source, SourceError, source_size
from prep.storage import Location
from prep.writers import ItemMeta, StagedRows, get_writer

ERRORS = "errors.jsonl"

STAGING = ".staging"

log = logging.getLogger("prep.shard")


def shard(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ShardOptions,
    progress: Progress | None = None,
) -> ShardSummary:
    """Turn a converted set (or any audio) into the requested training formats under OUT.

    ``progress`` is told the number of inputs, then each one as pass 1 finishes it."""
    options.validate()
    started = time.perf_counter()
    src, out = storage.location(src), storage.location(out)
    if src.local_path is not None and not src.local_path.exists():
        raise SourceError(f"{src}: no such file or folder")  # a prefix: told when listed
    if out.local_path is None:
        check_remote_out(out, options)
    sources = read_inputs(src)
    if not sources:
        raise SourceError(f"{src}: no audio files to shard")
    root, folders = input_folders(src, sources)
    check_out(out, root, folders)
    with locked_out(out):
        return _shard_held(out, options, sources, started, progress)


def _shard_held(
    out: Location,
    options: ShardOptions,
    sources: list[Source],
    started: float,
    progress: Progress | None,
) -> ShardSummary:
    """The run itself, with OUT held against other runs (:mod:`prep.runlock`)."""
    fingerprint = input_fingerprint(sources)
    staging = None
    where: Location | Path = out  # what was being written, for a one-line OS error
    try:
        states = {}
        for name in options.formats:
            where = out.join(name)
            states[name] = format_state(
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
        items, errors = _run_workers(sources, out.path, staging, options, todo, progress)
        summary.text_dropped = sum(m.text_dropped for m in items)
        rows = StagedRows(staging)
        for name in todo if items else []:  # no item at all: no empty set marked complete
            where = out.join(name)
            summary.written_formats[name] = write_format(
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


class _Pass1Reporter:
    """Moves the progress line and logs each input's ``-v`` note once: as the workers tell
    the staging folder's progress journal, and at the end from their results (for workers
    that do not see that folder)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.seen: set[str] = set()

    def report(self, records: list[Entry]) -> None:
        files = failed = 0
        seconds = 0.0
        for record in records:
            if record.get("id") in self.seen:
                continue
            self.seen.add(record.get("id"))
            if record.get("note"):
                log.debug("%s: %s", record.get("source"), record["note"])
            files += 1
            failed += bool(record.get("failed"))
            seconds += record.get("seconds") or 0.0
        if self.progress:
            if files:
                self.progress.advance(files, seconds, failed)
            else:
                self.progress.tick()


def _run_workers(
    sources: list[Source],
    out: Path,
    staging: Path,
    options: ShardOptions,
    todo: list[str],
    progress: Progress | None,
) -> tuple[list[ItemMeta], list[Entry]]:
    """Pass 1 over every source; the items in a deterministic order and the failures."""
    writers = [get_writer(n) for n in todo]
    item_writers = tuple(w for w in writers if w.per_item)
    aggregate = [w for w in writers if not w.per_item]
    reporter = _Pass1Reporter(progress)
    if progress:
        progress.start(len(sources))
    follower = JournalFollower(staging / PROGRESS)
    with (
        Workers(options.jobs, options.backend, options.scheduler) as workers,
        following(lambda: reporter.report(follower.read_new())),
    ):
        results = workers.run(
            shard_batch,
            batch_by_size(sources, source_size, workers.count),
            out=out,
            staging=staging,
            options=options,
            item_writers=item_writers,
            stage=bool(aggregate),
            threads=1 if workers.remote or min(workers.count, len(sources)) > 1 else 0,
        )
    reporter.report([record for _, _, told in results for record in told])
    items, duplicates = unique_items(m for batch, _, _ in results for m in batch)
    errors = sorted(
        (e for _, batch_errors, _ in results for e in batch_errors),
        key=lambda e: (e["source"], e["reason"]),
    )
    return items, errors + duplicates
