"""What one ``prep bench`` run measures, checked before any work starts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from prep.errors import UsageError
from prep.parallel import default_jobs

SAMPLE_RATE = 16000  # what prep convert and prep shard write by default
SEGMENT_RANGE = (0.1, 60.0)  # seconds: a mel needs a few frames; a batch must fit in memory
STEP_BATCH = 32  # the training steps' batch, when the sweep has it


class Mode(enum.StrEnum):
    QUICK = "quick"
    DEFAULT = "default"
    FULL = "full"


def parse_segment(text: str) -> float:
    """``--segment``: a duration (5s, 2.5s, 500ms, 80000samples) as seconds at 16 kHz."""
    from prep.segmenting import parse_duration

    try:
        seconds = parse_duration(text, SAMPLE_RATE) / SAMPLE_RATE
    except ValueError as exc:
        raise UsageError(f"--segment {exc}") from None
    low, high = SEGMENT_RANGE
    if not low <= seconds <= high:
        raise UsageError(f"--segment {text!r}: the bench takes {low:g} s to {high:g} s")
    return seconds


def check_tensorboard(logdir: Path) -> None:
    """``--tensorboard DIR``: refused before any work when it cannot be written at the end
    (lightning or tensorboard missing, or DIR is a file)."""
    import importlib.util

    missing = [m for m in ("lightning", "tensorboard") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"--tensorboard needs {' and '.join(missing)} (pip install 'audioprep[lightning]')"
        )
    if logdir.exists() and not logdir.is_dir():
        raise UsageError(f"--tensorboard {logdir}: is a file, not a folder")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``--batch-sizes 16,32,64``: whole numbers of 1 or more, each once, in order."""
    sizes = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UsageError(
                f"--batch-sizes {text!r}: {part!r} is not a whole number of 1 or more "
                "(write e.g. 16,32,64)"
            )
        sizes.append(int(part))
    return tuple(dict.fromkeys(sizes))


@dataclass(frozen=True)
class BenchOptions:
    out: Path = Path("bench-results")
    src: Path | None = None
    mode: Mode = Mode.DEFAULT
    jobs: int = 0
    device: str = "auto"  # auto | cpu | cuda
    cold: bool = False  # drop the files' cached pages before each timed run
    segment: str = "5s"
    batch_sizes: tuple[int, ...] = ()  # the loader sweep's; empty: the mode's own
    tensorboard: Path | None = None  # also write results.csv as TensorBoard scalars here

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        parse_segment(self.segment)
        if any(b < 1 for b in self.batch_sizes):
            raise UsageError("--batch-sizes must be whole numbers of 1 or more")
        if self.tensorboard is not None:
            check_tensorboard(self.tensorboard)

    @property
    def quick(self) -> bool:
        return self.mode is Mode.QUICK

    @property
    def segment_seconds(self) -> float:
        return parse_segment(self.segment)

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    @property
    def steps(self) -> int:
        return {Mode.QUICK: 4, Mode.DEFAULT: 15, Mode.FULL: 40}[self.mode]

    @property
    def repeats(self) -> int:
        return {Mode.QUICK: 1, Mode.DEFAULT: 2, Mode.FULL: 3}[self.mode]

    def loader_grid(self) -> tuple[list[int], list[int], float]:
        """DataLoader workers, batch sizes, and seconds per timed configuration."""
        cores = default_jobs()
        if self.mode is Mode.QUICK:
            workers, sizes, seconds = [0, 2], [8], 0.3
        elif self.mode is Mode.FULL:
            workers, sizes, seconds = list(range(0, cores + 3)), [1, 8, 32, 64], 2.0
        else:
            workers, sizes, seconds = sorted({0, 1, cores}), [1, 8, 32], 0.5
        return workers, list(self.batch_sizes or sizes), seconds

    @property
    def step_batch(self) -> int:
        """The training steps' batch size: 32 when the sweep has it, else its largest."""
        sizes = self.loader_grid()[1]
        return STEP_BATCH if STEP_BATCH in sizes else max(sizes)
