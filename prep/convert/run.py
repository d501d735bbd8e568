"""The run: sources found, what is current kept, the rest spread over the workers, the
manifests written.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from manifests import Entry
from prep.convert.batch import (
    ERRORS,
    JOURNAL_STEM,
    MANIFEST,
    SKIPPED,
    convert_batch,
    journal_record,
    journal_records,
)
from prep.convert.entries import line_entries
from prep.convert.options import TARGETS, ConvertOptions, duration_filter
from prep.convert.outcomes import FileResult, Job, Outcome
from prep.convert.reporting import Reporter, reporting
from prep.convert.resume import previous_entries, redo_reason
from prep.convert.split import finish_split_file, plan_split_files, work_bytes
from prep.errors import UsageError
from prep.parallel import Workers, batch_by_size
from prep.parts import PartDone
from prep.paths import check_out
from prep.progress import Progress
from prep.runlock import locked_out
from prep.sources import Source, discover, plan_output_names, protected_inputs
from prep.storage import Location, location

log = logging.getLogger("prep.convert")


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


CURRENT = "its source, its output and the options it depends on are unchanged"


def _check_src(src: Location) -> None:
    """Refuse a local SRC that does not exist (an object-storage prefix is told when listed)."""
    if src.local_path is not None and not src.local_path.exists():
        raise UsageError(f"{src}: no such file or folder")


def convert(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    progress: Progress | None = None,
) -> ConvertSummary:
    """Convert every audio file under SRC (or in a SRC manifest) into OUT.

    Writes ``OUT/manifest.jsonl`` (converted files, sorted by source path),
    ``OUT/errors.jsonl`` and ``OUT/skipped.jsonl``; returns the run's summary.
    ``progress`` is told the number of files, then each file's outcome as it finishes.
    """
    options = options or ConvertOptions()
    options.validate()
    src, out = location(src), location(out)
    _check_src(src)
    sources = discover(src, options.extensions)  # once: a manifest may be long
    check_out(out, *protected_inputs(src, sources))  # OUT clear of SRC, and writable
    with locked_out(out):
        return _convert_held(src, out, options, progress, sources)


def _convert_held(
    src: Location,
    out: Location,
    options: ConvertOptions,
    progress: Progress | None,
    sources: list[Source],
) -> ConvertSummary:
    """The run itself, with OUT held against other runs (:mod:`prep.runlock`)."""
    started = time.perf_counter()
    reporter = Reporter(progress)

    if progress:
        progress.start(len(sources))
    results: dict[str, FileResult] = {
        s.rel: FileResult(
            s.rel, Outcome.SKIPPED if s.problem.skipped else Outcome.FAILED, reason=s.problem.reason
        )
        for s in sources
        if s.problem is not None
    }
    reporter.report([journal_record(r) for r in results.values()])
    sources = [s for s in sources if s.problem is None]
    names = plan_output_names([s.rel for s in sources], TARGETS[options.to][1])
    jobs = [Job(s, names[s.rel]) for s in sources]
    previous = {} if options.overwrite else previous_entries(out)
    output_size = out.size_lookup()

    summary = ConvertSummary()
    todo = []
    done_seconds = 0.0
    for job in jobs:
        rel, entry = job.source.rel, previous.get(job.source.rel)
        why = redo_reason(entry, job, output_size, options)
        if why is not None:
            if entry is not None:
                log.debug("%s: converting again: %s", rel, why)
            todo.append(job)
            continue
        reason = duration_filter(entry["duration"], options)
        log.debug("%s: already done (%s)%s", rel, CURRENT, f"; skipped: {reason}" if reason else "")
        if reason:
            results[rel] = FileResult(rel, Outcome.SKIPPED, reason=reason)
        else:
            results[rel] = FileResult(rel, Outcome.DONE, entry)
            done_seconds += (
                entry.get("file_num_samples", entry["num_samples"]) / options.sample_rate
            )
    if progress and len(jobs) > len(todo):
        progress.advance(len(jobs) - len(todo), done_seconds)
    reporter.reported.update(results)  # counted above; a rerun does not tell them again

    journal = out.journal(JOURNAL_STEM)
    local_out = out.local_path  # parts are written in place: a file system only
    split = {} if local_out is None else plan_split_files(todo, local_out, options)
    items = [job for job in todo if job.source.rel not in split]
    items += [task for file in split.values() for task in file.tasks]
    with (
        Workers(options.jobs, options.backend, options.scheduler) as workers,
        reporting(journal, reporter),
    ):
        batch_results = workers.run(
            convert_batch,
            batch_by_size(items, work_bytes, workers.count),
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
                    results[rel] = finish_split_file(file, parts_done[rel], local_out, options)
                    for record in journal_records(results[rel]):
                        appender.append(record)
    reporter.report(
        [rec for r in results.values() if r.status != Outcome.DONE for rec in journal_records(r)]
    )

    entries, errors, skipped = [], [], []
    source_of = {s.rel: s for s in sources}
    for rel in sorted(results):
        result = results[rel]
        if result.status in (Outcome.CONVERTED, Outcome.DONE):
            lines, line_errors, line_skips = line_entries(result.entry, source_of[rel], options)
            entries += lines
            errors += line_errors
            skipped += line_skips
            summary.failed += len(line_errors)
            summary.skipped += len(line_skips)
            summary.audio_seconds += sum(e["duration"] for e in lines)
            file_seconds = result.entry.get("file_num_samples", result.entry["num_samples"])
            if result.status == Outcome.CONVERTED:
                summary.converted += 1
                summary.converted_seconds += file_seconds / options.sample_rate
            else:
                summary.already_done += 1
        elif result.status == Outcome.FAILED:
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
