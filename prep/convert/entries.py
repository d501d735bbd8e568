"""The manifest lines of a converted file: one per utterance a SRC manifest names in it."""

from __future__ import annotations

from manifests import CONVERTED_FILE_FIELDS, Entry
from prep.convert.options import ConvertOptions, duration_filter
from prep.sources import Source
from prep.utterances import Span, SpanError, line_span


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
    entry.update({k: file_entry[k] for k in CONVERTED_FILE_FIELDS if k in file_entry})
    for key, value in fields.items():
        entry.setdefault(key, value)
    return entry


def line_entries(
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
        if not source.one_whole_file and (reason := duration_filter(entry["duration"], options)):
            skipped.append({**where, "reason": f"manifest line {line.line}: {reason}"})
            continue
        entries.append(entry)
    return entries, errors, skipped
