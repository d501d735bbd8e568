"""``prep convert``: any audio to 16 kHz mono 16-bit WAV (or FLAC), in memory, in parallel.

Each file is decoded, mixed down and resampled in blocks (memory stays flat whatever its
length), written under a temporary name and renamed. Results are journalled as they come
back, so a killed run resumes where it stopped; a rerun skips what is complete and current.

One module per concern: ``options`` (what to make, checked first), ``one_file`` (one
file's conversion and entry), ``entries`` (a file's manifest lines, one per utterance),
``batch`` (the worker side and its journal), ``resume`` (what an earlier run left),
``reporting`` (errors and progress as files finish), ``split`` (long files as parallel
parts) and ``run`` (the run itself).
"""

from prep.convert.batch import ERRORS, JOURNAL, JOURNAL_STEM, MANIFEST, SKIPPED
from prep.convert.one_file import convert_file
from prep.convert.options import MIN_AUDIO_SECONDS, TARGETS, ConvertOptions
from prep.convert.outcomes import FileResult, Job, Outcome
from prep.convert.run import ConvertSummary, convert
from prep.convert.split import finish_split_file, plan_split_files

_Job, _plan_split_files, _finish_split_file = Job, plan_split_files, finish_split_file

__all__ = [
    "ERRORS",
    "JOURNAL",
    "JOURNAL_STEM",
    "MANIFEST",
    "MIN_AUDIO_SECONDS",
    "SKIPPED",
    "TARGETS",
    "ConvertOptions",
    "ConvertSummary",
    "FileResult",
    "Outcome",
    "convert",
    "convert_file",
]
