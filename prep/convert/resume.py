"""What an earlier run left that this one need not redo."""

from __future__ import annotations

import logging
from collections.abc import Callable

from manifests import Entry
from prep.convert.batch import JOURNAL_STEM, MANIFEST
from prep.convert.one_file import stat_fields
from prep.convert.outcomes import Job
from prep.storage import Location, location

log = logging.getLogger("prep.convert")


def previous_entries(out: Location) -> dict[str, Entry]:
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


def redo_reason(
    entry: Entry | None, job: Job, output_size: Callable[[str], int | None], options
) -> str | None:
    """Why a file must be converted (again); None when an earlier run's output is current."""
    if entry is None:
        return "not converted before"
    if entry.get("audio_filepath") != job.out_rel:
        return f"its output name is now {job.out_rel}"
    if entry.get("convert_params") != options.output_params():
        return "other options (--to, --sr, --channels, --decoder or --quality)"
    try:
        stat = stat_fields(location(job.source.path))
    except OSError:
        return "its source cannot be looked at"
    if {k: entry.get(k) for k in ("source_size", "source_mtime_ns")} != stat:
        return "its source changed (size or modification time)"
    if output_size(job.out_rel) != entry.get("file_size"):
        return "its output is missing or changed"
    return None
