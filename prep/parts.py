"""Long FLAC and WAV files converted as fixed ranges ("parts") that any worker can take.

Without parts, a run over a few long recordings ends with one core converting the last
file while the others wait, and a 2-hour field recording takes one core however many
there are. A file is cut into parts when its decoder seeks it to the exact sample and its
header states its length exactly (``AudioInfo.exact_seeks``: with libsndfile, PCM in FLAC
or WAV, see :mod:`loaders.audio.soundfile_backend`), and it holds at least two parts.
Such a file is *always* converted part by part, whether its parts run in many workers
at once (:class:`PartTask`, written in place into one shared temporary file) or one
after another in one worker (:func:`iter_parts`: object storage, FLAC output), so its
bytes depend on the file alone: never on ``-j``, the backend or where it is stored.

Each part decodes a margin on either side of its range and resamples with a stream of
its own. Range starts are multiples of ``in_rate / gcd(in_rate, out_rate)`` frames, so
every part's output falls on the whole file's output grid and the parts join without a
seam: they agree with one stream over the whole file to float rounding (at most one
int16 step, on a few samples in ten thousand; tested).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loaders.audio.base import AudioInfo, AudioReader
from loaders.audio.dsp import mono_stream, to_int16
from loaders.audio.errors import DecodeError
from loaders.audio.registry import decoder_named
from prep.errors import os_reason
from prep.pcm import WAV_HEADER_BYTES, pcm16_bytes, wav16_header
from prep.readahead import ReadAhead, read_ahead
from prep.writers.files import file_digest

PART_SECONDS = 60.0
"""Input seconds per part by default: a few seconds of work per part, and few enough parts
that reopening the file and decoding the margins cost under 1%. (Tests pass shorter parts,
so that a file of a few seconds takes the parts path.)"""

MARGIN_SECONDS = 0.25
"""Input decoded and resampled on either side of a part and then dropped: far more than
soxr's filter reaches (a few milliseconds at HQ and VHQ)."""


@dataclass(frozen=True)
class PartPlan:
    """Where one file is cut: part ``i`` covers input frames ``starts[i]`` up to the next
    start (the last part runs to the end of the file)."""

    in_rate: int
    out_rate: int
    frames: int
    starts: tuple[int, ...]
    margin: int
    decoder: str
    """The backend that planned it, which each part's worker opens the file with."""

    def __len__(self) -> int:
        return len(self.starts)

    def input_range(self, index: int) -> tuple[int, int]:
        stop = self.starts[index + 1] if index + 1 < len(self.starts) else self.frames
        return self.starts[index], stop

    def output_start(self, index: int) -> int:
        """Where part ``index``'s samples begin in the output (exact: starts are aligned)."""
        return self.starts[index] * self.out_rate // self.in_rate

    def output_samples(self, index: int) -> int | None:
        """How many samples part ``index`` produces; None for the last, which runs until
        the resampler has flushed (as a whole-file stream would)."""
        if index + 1 == len(self.starts):
            return None
        return self.output_start(index + 1) - self.output_start(index)


def plan_parts(
    info: AudioInfo, out_rate: int, part_seconds: float = PART_SECONDS
) -> PartPlan | None:
    """How to cut a file into parts of ``part_seconds`` of input, or None when it is
    converted as one stream (files under two parts, and files or decoders whose seeks are
    not exact)."""
    if not info.exact_seeks or not info.frames:
        return None
    in_rate = info.sample_rate
    period = in_rate // math.gcd(in_rate, out_rate)
    length = round(part_seconds * in_rate / period) * period
    if length == 0 or info.frames < 2 * length:
        return None
    margin = 0 if in_rate == out_rate else math.ceil(MARGIN_SECONDS * in_rate / period) * period
    starts = tuple(range(0, (info.frames // length) * length, length))
    return PartPlan(in_rate, out_rate, info.frames, starts, margin, info.decoder)


def part_blocks(
    reader: AudioReader | ReadAhead, plan: PartPlan, index: int, channels: str, quality: str
) -> Iterator[np.ndarray]:
    """Mono float32 blocks at the output rate holding exactly part ``index``'s samples."""
    start, stop = plan.input_range(index)
    first = max(0, start - plan.margin)
    last = plan.frames if index + 1 == len(plan) else min(plan.frames, stop + plan.margin)
    blocks = reader.range_blocks(first, last)
    resampled = mono_stream(blocks, plan.in_rate, plan.out_rate, channels, quality)
    skip = (start - first) * plan.out_rate // plan.in_rate
    yield from _window(resampled, skip, plan.output_samples(index))


def _window(blocks: Iterable[np.ndarray], skip: int, keep: int | None) -> Iterator[np.ndarray]:
    """The samples from ``skip`` on (``keep`` of them, or all the rest) of a block stream."""
    position = 0
    for block in blocks:
        lo = max(skip - position, 0)
        hi = len(block) if keep is None else min(len(block), skip + keep - position)
        if hi > lo:
            yield block[lo:hi]
        position += len(block)


def iter_parts(
    reader: AudioReader | ReadAhead, plan: PartPlan, channels: str, quality: str
) -> Iterator[np.ndarray]:
    """Every part in order from one reader: the whole file's output, as parallel parts
    would write it."""
    for index in range(len(plan)):
        yield from part_blocks(reader, plan, index, channels, quality)


@dataclass(frozen=True)
class PartTask:
    """One part of a long local file, for any worker: its samples go straight to their
    place in the file's shared temporary output (whose header the main process writes)."""

    path: Path
    rel: str
    tmp: Path
    plan: PartPlan
    index: int
    channels: str
    quality: str
    input_bytes: int
    """This part's share of the source's bytes, for sizing batches."""


@dataclass(frozen=True)
class PartDone:
    """What a worker reports for one part: samples written, or why it failed."""

    rel: str
    index: int
    samples: int = 0
    reason: str | None = None
    source_sha256: str | None = None
    """The source's hash, taken by the worker of part 0 so the main process need not."""


def start_output(tmp: Path) -> None:
    """Create the shared temporary output that part workers write into."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        fh.write(bytes(WAV_HEADER_BYTES))  # the header comes last, once the length is known


def convert_part(task: PartTask) -> PartDone:
    """Worker side: decode, resample and write one part in place; never raises for bad input."""
    plan = task.plan
    samples = 0
    try:
        opened = decoder_named(plan.decoder).open(task.path)
        try:
            if (opened.info.frames, opened.info.sample_rate) != (plan.frames, plan.in_rate):
                raise DecodeError("the file changed while it was being converted")
            with read_ahead(opened) as reader, _opened_for_writing(task.tmp) as fd:
                offset = WAV_HEADER_BYTES + 2 * plan.output_start(task.index)
                for block in part_blocks(reader, plan, task.index, task.channels, task.quality):
                    data = pcm16_bytes(to_int16(block))
                    _pwrite_all(fd, data, offset)
                    offset += len(data)
                    samples += len(block)
        finally:
            opened.close()
        digest = file_digest(task.path) if task.index == 0 else None
    except DecodeError as exc:
        return PartDone(task.rel, task.index, samples, reason=str(exc))
    except OSError as exc:
        return PartDone(task.rel, task.index, samples, reason=os_reason(exc))
    return PartDone(task.rel, task.index, samples, source_sha256=digest)


@contextlib.contextmanager
def _opened_for_writing(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_WRONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def finish_output(tmp: Path, plan: PartPlan, done: list[PartDone]) -> int:
    """Main side, once every part has reported: check that each landed whole, write the
    WAV header, and return the file's sample count. Raises :class:`DecodeError` with the
    first failed part's reason (the earliest point at which the file went wrong)."""
    done = sorted(done, key=lambda d: d.index)
    if [d.index for d in done] != list(range(len(plan))):
        raise DecodeError("a part of the file was not converted")
    for part in done:
        if part.reason is not None:
            raise DecodeError(part.reason)
        expected = plan.output_samples(part.index)
        if expected is not None and part.samples != expected:
            raise DecodeError(f"part {part.index} produced {part.samples} of {expected} samples")
    samples = plan.output_start(len(plan) - 1) + done[-1].samples
    with open(tmp, "r+b") as fh:
        fh.write(wav16_header(plan.out_rate, samples))
    return samples
