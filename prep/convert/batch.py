"""Worker side: a batch of files (and parts of long files) converted, each outcome journalled."""

from __future__ import annotations

from loaders.audio.errors import DecodeError
from loaders.audio.quiet import quiet_native_stderr
from manifests import Entry
from prep.convert.one_file import convert_file
from prep.convert.options import ConvertOptions
from prep.convert.outcomes import FileResult, Job, Outcome, Skip
from prep.errors import os_reason
from prep.parts import PartDone, PartTask, convert_part
from prep.storage import Journal, Location

MANIFEST = "manifest.jsonl"
ERRORS = "errors.jsonl"
SKIPPED = "skipped.jsonl"
JOURNAL_STEM = "convert"
"""The run's journal (:meth:`prep.storage.Location.journal`): ``convert.journal.jsonl`` in a
local OUT, one object per finished batch under ``.convert-journal/`` on object storage."""
JOURNAL = f"{JOURNAL_STEM}.journal.jsonl"


NOTE, NOTE_OF = "note", "note_of"
"""A debug note's journal line: ``{"note": ..., "note_of": SOURCE}``. It has no ``source``,
so what resumes a run (:func:`prep.convert.resume.previous_entries`) passes it by."""


def journal_record(result: FileResult) -> Entry:
    if result.status == Outcome.CONVERTED:
        return result.entry
    return {"source": result.rel, "status": result.status, "reason": result.reason}


def journal_records(result: FileResult) -> list[Entry]:
    """An outcome's journal lines: its debug note first (when it has one), then itself."""
    record = journal_record(result)
    return [{NOTE: result.note, NOTE_OF: result.rel}, record] if result.note else [record]


def convert_batch(
    jobs: list[Job | PartTask],
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
    batch = "\n".join(job.source.rel for job in jobs if isinstance(job, Job))
    with quiet_native_stderr() as native, journal.writer(batch) as appender:
        for job in jobs:
            if isinstance(job, PartTask):
                results.append(convert_part(job))
                native.take()  # a part has no line of its own; not the next file's either
                continue
            target = out_root.join(job.out_rel)
            notes: list[str] = []
            try:
                entry = convert_file(job.source, target, job.out_rel, options, notes)
                results.append(FileResult(job.source.rel, Outcome.CONVERTED, entry))
            except Skip as skip:
                results.append(FileResult(job.source.rel, Outcome.SKIPPED, reason=str(skip)))
            except DecodeError as exc:
                results.append(FileResult(job.source.rel, Outcome.FAILED, reason=str(exc)))
            except OSError as exc:
                results.append(FileResult(job.source.rel, Outcome.FAILED, reason=os_reason(exc)))
            if chatter := native.take():
                notes.append(f"native stderr: {chatter}")
            results[-1].note = "; ".join(notes)
            for record in journal_records(results[-1]):
                appender.append(record)
    return results
