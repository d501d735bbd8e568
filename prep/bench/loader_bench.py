"""Loader throughput: every format across DataLoader workers and batch sizes, float32 and
the int16 fast path, against decoding the original files on the fly.

Each configuration is timed after its first batch (worker start-up and warm-up are not
counted) for up to ``max_seconds`` or one pass over the set. The batch goes through
``to_device`` inside the timed loop, as a training step would (int16 becomes float32 there).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from loaders import ThreadedLoader, batch_loader, open_dataset, to_device
from prep.bench.cache import drop

log = logging.getLogger(__name__)

# Batches in flight per worker: the DataLoader's default. Shared slots need
# prefetch * workers + 2 of them; at 4, memmap read ~15% slower than at 2 (the ring of 5 MB
# slots outgrows the caches), measured side by side.
WORKER_PREFETCH = 2
MEL_NAME = "mel (precomputed .npy)"
ON_THE_FLY = "on-the-fly"


@dataclass(frozen=True)
class Source:
    """A dataset the sweep reads, opened the way the printed code line opens it."""

    path: Path
    options: tuple[tuple[str, object], ...] = ()  # besides dtype, in the order printed
    dtypes: tuple[str, ...] = ("int16", "float32")  # the transports it is measured with
    takes_dtype: bool = True
    returns: str = "audio"

    def kwargs(self, dtype: str) -> dict:
        return {**({"dtype": dtype} if self.takes_dtype else {}), **dict(self.options)}

    def __call__(self, dtype: str) -> Dataset | None:
        """The dataset for ``dtype``, or None if it is not measured with that transport."""
        if dtype not in self.dtypes:
            return None
        return open_dataset(self.path, **self.kwargs(dtype))

    def code(self, dtype: str) -> str:
        args = [_py(str(self.path))] + [f"{k}={_py(v)}" for k, v in self.kwargs(dtype).items()]
        return f"open_dataset({', '.join(args)})"


def _py(value: object) -> str:
    """A Python literal for a code line (double-quoted strings, as people write them)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def workers_text(workers: int) -> str:
    return f"{workers} worker" + ("" if workers == 1 else "s")


def threads_text(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


@dataclass
class LoaderRow:
    name: str
    dtype: str
    workers: int  # DataLoader worker processes; threads when ``threads`` is set
    batch_size: int
    items_per_second: float
    audio_seconds_per_second: float
    repeats: int
    threads: bool = False
    shared: bool = False  # batches handed over through shared slots (loaders.shared_batches)
    via: str = ""  # the system whose own loader built it ("DALI"); "" for batch_loader's
    compared: bool = False  # another ecosystem's loader: shown, never recommended

    @property
    def parallelism(self) -> str:
        if self.threads:
            text = threads_text(self.workers)
        else:
            text = workers_text(self.workers) + (", shared slots" if self.shared else "")
        return f"{self.via}, {text}" if self.via else text

    def loader_call(self, batch_size: int | None = None, pin_memory: bool = False):
        """(loader function name, keyword arguments): what the sweep built for this row."""
        b = batch_size or self.batch_size
        if self.threads:
            kwargs = {"batch_size": b, "num_threads": self.workers, "prefetch": 4}
            return "ThreadedLoader", {**kwargs, "shuffle": True}
        kwargs: dict = {"batch_size": b, "shuffle": True}
        if self.workers:
            kwargs.update(
                num_workers=self.workers,
                shared_slots=self.shared,
                prefetch_factor=WORKER_PREFETCH,
                persistent_workers=True,  # a small set read twice must not fork workers again
            )
        if pin_memory:
            kwargs["pin_memory"] = True
        return "batch_loader", kwargs


def build_loader(row: LoaderRow, dataset: Dataset, batch_size: int | None = None, pin=False):
    """The loader ``row`` stands for, built from the same call its code line prints."""
    name, kwargs = row.loader_call(batch_size, pin)
    return {"ThreadedLoader": ThreadedLoader, "batch_loader": batch_loader}[name](dataset, **kwargs)


def loader_code(row: LoaderRow, source: Source, pin_memory: bool = False) -> str:
    """Two lines of Python that build the loader ``row`` measured, runnable as they are."""
    name, kwargs = row.loader_call(pin_memory=pin_memory)
    args = ", ".join([source.code(row.dtype)] + [f"{k}={_py(v)}" for k, v in kwargs.items()])
    return f"from loaders import {name}, open_dataset\nloader = {name}({args})"


def time_loader(loader, device: str, max_seconds: float, max_batches: int) -> tuple[float, float]:
    """(items/s, audio-seconds/s) after the first batch, over as many epochs as it takes
    to reach ``max_batches`` or ``max_seconds`` (a small set is read more than once).

    On a GPU each batch is moved there (and int16 becomes float32 there); on the CPU the
    batch is taken as the loader hands it over, and the int16-to-float32 step is part of
    the training step the step benchmark times.
    """
    batches = iter(loader)
    next(batches)
    items, audio, count = 0, 0.0, 0
    started = time.perf_counter()
    while count < max_batches and time.perf_counter() - started < max_seconds:
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            continue
        moved = to_device(batch, device) if device != "cpu" else batch
        items += len(moved["key"])
        audio += float(moved["lengths"].sum()) / moved["sample_rate"]
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = max(time.perf_counter() - started, 1e-9)
    return items / elapsed, audio / elapsed


def loader_plan(
    workers: list[int], batch_sizes: list[int], threads: int, iterable: bool
) -> list[tuple[int, int, bool, bool]]:
    """(workers, batch, threads?, shared slots?) for one dataset: no workers and the most
    workers at every batch size (shared slots with workers); the worker counts between,
    the DataLoader's own hand-over and ``threads`` threads (map-style sets) at the largest
    batch size, to compare. Pass one batch size to time a second transport only where
    training would use it."""
    ends = {min(workers), max(workers)}
    plan = [
        (w, b, False, w > 0)
        for w in workers
        for b in batch_sizes
        if w in ends or b == max(batch_sizes)
    ]
    if max(workers) > 0:
        plan.append((max(workers), max(batch_sizes), False, False))
    if threads and not iterable:
        plan.append((threads, max(batch_sizes), True, False))
    return plan


@dataclass
class Pipeline:
    """A loader row that another system's own loader builds (a DALI pipeline, Lhotse's
    sampler), measured at each of ``settings`` at the largest batch size. ``opener``
    imports the system and opens the data, once; ``make`` builds a loader from what it
    returned, a batch size and a setting, per timed run."""

    name: str
    items: int  # in one epoch, as in the other rows
    opener: Callable[[], object]
    make: Callable[[object, int, int], Iterable[dict]]
    dtype: str = "int16"
    settings: tuple[int, ...] = (0,)  # DataLoader workers, or the system's threads
    threads: bool = False
    via: str = ""
    code_line: Callable[[int, int], str] | None = None  # None: shown for comparison only
    returns: str = "audio"
    _opened: object = field(default=None, repr=False)

    def open(self) -> object:
        if self._opened is None:
            self._opened = self.opener()
        return self._opened

    def loader(self, batch_size: int, setting: int) -> Iterable[dict]:
        return self.make(self.open(), batch_size, setting)

    def code(self, row: LoaderRow) -> str:
        """The runnable lines that build the loader ``row`` measured (rows the
        recommendation may pick)."""
        if self.code_line is None:
            raise ValueError(f"{self.name} is shown for comparison, not recommended")
        return self.code_line(row.batch_size, row.workers)

    def rows(self, batch_size: int, repeats: int) -> list[LoaderRow]:
        compared = self.code_line is None
        return [
            LoaderRow(
                self.name,
                self.dtype,
                setting,
                batch_size,
                0.0,
                0.0,
                repeats,
                threads=self.threads,
                via=self.via,
                compared=compared,
            )
            for setting in self.settings
        ]


def _left_out(name: str, exc: BaseException) -> str:
    """A note for the report: which row is missing and why, in one line."""
    if isinstance(exc, ImportError):
        return f"{name}: left out, its system is not installed ({exc})"
    reason = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{name}: left out, it failed ({type(exc).__name__}: {reason})"


def measure_loaders(
    sets: dict[str, Source],
    workers: list[int],
    batch_sizes: list[int],
    repeats: int,
    device: str = "cpu",
    max_seconds: float = 1.5,
    threads: int = 2,
    cold_roots: tuple[Path, ...] = (),
    pipelines: dict[str, Pipeline] | None = None,
    notes: list[str] | None = None,
) -> list[LoaderRow]:
    """Every set in each of its transports, the loaders its plan names, then each of
    ``pipelines`` at the largest batch size; every repeat runs them all in turn, so a slow
    spell hits every row alike. A set read as int16 too is read as float32 at the largest
    batch size only: the transport changes the bytes handed over, not how batch size or
    workers scale. With ``cold_roots``, those files' cached pages are dropped before every
    timed run. A pipeline that cannot be imported or fails is left out, with a line in
    ``notes``."""
    pin = device.startswith("cuda")
    jobs: list[_Job] = []
    for name, source in sets.items():
        for dtype in source.dtypes:
            dataset = source(dtype)
            sizes = batch_sizes
            if dtype != "int16" and "int16" in source.dtypes:
                sizes = [max(batch_sizes)]
            plan = loader_plan(workers, sizes, threads, isinstance(dataset, IterableDataset))
            for w, b, is_threads, shared in plan:
                row = LoaderRow(name, dtype, w, b, 0.0, 0.0, repeats, is_threads, shared)
                jobs.append(_Job(row, partial(build_loader, row, dataset, pin=pin), len(dataset)))
    for pipeline in (pipelines or {}).values():
        for row in pipeline.rows(max(batch_sizes), repeats):
            make = partial(pipeline.loader, row.batch_size, row.workers)
            jobs.append(_Job(row, make, pipeline.items, True))
    for _ in range(repeats):
        for job in jobs:
            if job.left_out:
                continue
            if cold_roots:
                drop(*cold_roots)
            batches = max(4, job.items // job.row.batch_size)
            try:
                job.timings.append(time_loader(job.make(), device, max_seconds, batches))
            except Exception as exc:  # another system's failure leaves its row out, noted
                if not job.optional:
                    raise
                job.left_out = _left_out(job.row.name, exc)
                log.warning("%s", job.left_out)
                if notes is not None:
                    notes.append(job.left_out)
    rows = []
    for job in jobs:
        if job.timings and not job.left_out:
            job.row.items_per_second = statistics.median(r[0] for r in job.timings)
            job.row.audio_seconds_per_second = statistics.median(r[1] for r in job.timings)
            rows.append(job.row)
    return rows


@dataclass
class _Job:
    """One row of the sweep: how to build its loader, and its timings so far."""

    row: LoaderRow
    make: Callable[[], Iterable[dict]]
    items: int
    optional: bool = False  # another system's: a failure leaves the row out, noted
    timings: list[tuple[float, float]] = field(default_factory=list)
    left_out: str = ""


def decoded_mix(originals: Path) -> str:
    """What the on-the-fly baseline decodes: "mp3", or "mixed: 250 mp3, 30 ogg, 20 flac"."""
    counts = Counter(
        Path(e["path"]).suffix.lower().lstrip(".") for e in open_dataset(originals).entries
    )
    if len(counts) == 1:
        return next(iter(counts))
    return "mixed: " + ", ".join(f"{n} {codec}" for codec, n in counts.most_common())


def dataset_builders(
    sharded: Path, originals: Path, segment_seconds: float = 5.0
) -> dict[str, Source]:
    """Every format the shard step wrote, plus the on-the-fly baseline on the original files.

    ``with_mel`` is passed wherever a reader has it: these rows measure audio, and the
    readers' default for it is not theirs to rely on."""
    audio_only = (("with_mel", False),)
    crop = f"{segment_seconds:g} s crops"
    written_by_some_runs = {}  # left out of quick mode's shard phase
    if (sharded / "tensordict").is_dir():  # int16 only: memmap's rows show the transports
        written_by_some_runs["tensordict"] = Source(sharded / "tensordict", dtypes=("int16",))
    return {
        "memmap": Source(sharded / "memmap"),
        "hdf5": Source(sharded / "hdf5", audio_only),
        "webdataset": Source(sharded / "webdataset", audio_only),
        "segments": Source(sharded / "segments"),
        MEL_NAME: Source(
            sharded / "mel", dtypes=("float32",), takes_dtype=False, returns="precomputed log-mel"
        ),
        f"on-the-fly, {decoded_mix(originals)} (decode + resample, {crop})": Source(
            originals, (("crop_seconds", segment_seconds),), dtypes=("float32",)
        ),
        **written_by_some_runs,
    }


def raw_ceiling(memmap_file: Path, batch_size: int = 32, seconds: float = 1.0) -> float:
    """numpy reading the same int16 rows from page cache, random batches: items/s."""
    array = np.load(memmap_file, mmap_mode="r")
    rng = np.random.default_rng(0)
    array[rng.integers(0, len(array), batch_size)]  # warm
    items = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        block = array[np.sort(rng.integers(0, len(array), batch_size))]
        items += len(block)
    return items / (time.perf_counter() - started)


def baseline_row(best: dict[str, LoaderRow]) -> LoaderRow | None:
    return next((r for n, r in best.items() if n.startswith(ON_THE_FLY)), None)


def _ratio(speed: float, baseline: LoaderRow | None) -> float:
    if baseline is None or baseline.items_per_second <= 0:
        return float("nan")
    return speed / baseline.items_per_second


def best_rows(rows: list[LoaderRow]) -> dict[str, LoaderRow]:
    best: dict[str, LoaderRow] = {}
    for row in rows:
        if row.name not in best or row.items_per_second > best[row.name].items_per_second:
            best[row.name] = row
    return best


def _times(ratio: float) -> str:
    """A ratio to the baseline: whole above 10, one decimal below (a slower row is 0.4x,
    not 0x)."""
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def one_setting_names(rows: list[LoaderRow]) -> list[str]:
    """The names measured at one setting only, in order (a pipeline given one setting;
    every built-in row has two or more)."""
    counts = Counter(r.name for r in rows)
    return [name for name in counts if counts[name] == 1]


def _column(row: LoaderRow) -> tuple:
    return (row.via, row.threads, row.workers, row.shared)


def loader_tables(rows: list[LoaderRow]) -> str:
    best = best_rows(rows)
    baseline = baseline_row(best)
    lines = [
        "| format | best items/s | audio-s/s | parallelism | batch | transport | x on-the-fly |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for row in sorted(best.values(), key=lambda r: -r.items_per_second):
        ratio = _ratio(row.items_per_second, baseline)
        lines.append(
            f"| {row.name} | {row.items_per_second:,.0f} | {row.audio_seconds_per_second:,.0f} "
            f"| {row.parallelism} | {row.batch_size} | {row.dtype} | {_times(ratio)} |"
        )
    lines += ["", "Items/s by parallelism (best batch size and transport for each):", ""]
    label = {_column(r): r.parallelism for r in rows}
    columns = sorted(label)
    lines.append("| format | " + " | ".join(label[c] for c in columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for name in best:
        cells = []
        for column in columns:
            found = [r.items_per_second for r in rows if r.name == name and _column(r) == column]
            cells.append(f"{max(found):,.0f}" if found else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def returns_line(row: LoaderRow, source: Source | Pipeline) -> str:
    """What the recommended loader's batches hold."""
    if source.returns != "audio":
        return f'Its batches hold {source.returns} (`batch["mel"]`), float32.'
    if row.dtype == "int16":
        return (
            'Its batches hold int16 audio (`batch["audio"]`, with `lengths`); '
            "`loaders.to_device(batch, device)` makes it float32 on the device."
        )
    return 'Its batches hold float32 audio (`batch["audio"]`, with `lengths`).'


def recommendation(
    rows: list[LoaderRow],
    cpu_count: int,
    sources: dict[str, Source | Pipeline],
    pin_memory: bool = False,
    bold: bool = True,
) -> tuple[str, str]:
    """Plain words (which format, parallelism and batch size, and why, from this run) and
    the code line that builds that loader; other ecosystems' rows are not candidates."""
    best = best_rows([r for r in rows if not r.compared])
    top = max(best.values(), key=lambda r: r.items_per_second)
    baseline = baseline_row(best)

    def b(text: object) -> str:
        return f"**{text}**" if bold else str(text)

    lines = [
        f"On this machine ({cpu_count} cores) train from {b(top.name)} with "
        f"{b(top.parallelism)}, batch size {b(top.batch_size)} and {b(top.dtype)} transport: "
        f"{top.items_per_second:,.0f} items/s"
        + (
            f", {_ratio(top.items_per_second, baseline):.0f}x decoding the original "
            f"files on the fly ({baseline.items_per_second:,.0f} items/s at best)."
            if baseline
            else "."
        ),
        returns_line(top, sources[top.name]),
    ]

    def fastest(name: str, with_workers: bool) -> float:
        speeds = [
            r.items_per_second
            for r in rows
            if r.name == name and not r.threads and (r.workers > 0) == with_workers
        ]
        return max(speeds, default=0.0)

    slower = [n for n in best if 0 < fastest(n, True) < fastest(n, False)]
    if slower:
        lines.append(
            "Worker processes made these slower than none: " + ", ".join(slower) + ". Reading "
            "them costs less than running the same reads in other processes and handing the "
            "batches over; use no workers (or threads) for them."
        )
    if any(r.shared for r in rows):
        lines.append(
            "Worker rows hand batches over through reused shared slots "
            "(`batch_loader(..., shared_slots=True)`); the DataLoader's own hand-over, a "
            "fresh shared-memory segment per batch, is the column without them."
        )
    source = sources[top.name]
    if isinstance(source, Pipeline):
        return " ".join(lines), source.code(top)
    return " ".join(lines), loader_code(top, source, pin_memory)
