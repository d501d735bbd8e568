"""The JSONL manifest contract of every audioprep step; imports neither prep nor loaders."""

from manifests.atomic import atomic_path, naming, partial_name, remove_partials
from manifests.jsonl import (
    Entry,
    JournalFollower,
    ManifestAppender,
    ManifestError,
    dumps_entry,
    iter_journal,
    iter_manifest,
    parse_journal_lines,
    parse_manifest_lines,
    read_manifest,
    write_manifest,
)
from manifests.schema import (
    AUDIOPREP_FIELDS,
    CONVERTED_FILE_FIELDS,
    NEMO_FIELDS,
    is_url,
    resolve_audio_path,
    validate_entry,
    validate_manifest,
)

__all__ = [
    "AUDIOPREP_FIELDS",
    "CONVERTED_FILE_FIELDS",
    "NEMO_FIELDS",
    "Entry",
    "JournalFollower",
    "ManifestAppender",
    "ManifestError",
    "atomic_path",
    "naming",
    "partial_name",
    "dumps_entry",
    "is_url",
    "iter_journal",
    "iter_manifest",
    "parse_journal_lines",
    "parse_manifest_lines",
    "read_manifest",
    "remove_partials",
    "resolve_audio_path",
    "validate_entry",
    "validate_manifest",
    "write_manifest",
]
