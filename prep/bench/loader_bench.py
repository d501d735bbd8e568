"""Loader throughput: every format across DataLoader workers and batch sizes, float32 and
the int16 fast path, against decoding the original files on the fly.

Each configuration is timed after its first batch (worker start-up and warm-up are not
counted) for up to ``max_seconds`` or one pass over the set. The batch goes through
``to_device`` inside the timed loop, as a training step would (int16 becomes float32 there).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from loaders import ThreadedLoader, batch_loader, open_dataset, to_device
from prep.bench.cache import drop

# Batches in flight per worker: the DataLoader's default. Shared slots need
# prefetch * workers + 2 of them; at 4, memmap read ~15% slower than at 2 (the ring of 5 MB
# slots outgrows the caches), measured side by side.
WORKER_PREFETCH = 2


@dataclass
class LoaderRow:
    name: str
    dtype: str
    workers: int  # DataLoader worker processes; threads when ``threads`` is set
    batch_size: int
    samples_per_second: float
    audio_seconds_per_second: float
    repeats: int
    threads: bool = False
    shared: bool = False  # batches handed over through shared slots (loaders.shared_batches)

    @property
    def parallelism(self) -> str:
        if self.threads:
            return f"{self.workers} threads"
        return f"{self.workers} workers" + (", shared slots" if self.shared else "")


def _loader(dataset: Dataset, batch_size: int, workers: int, shared: bool = False):
    shuffle = not isinstance(dataset, IterableDataset)
    return batch_loader(
        dataset,
        batch_size,
        shuffle=shuffle,
        shared_slots=shared,
        num_workers=workers,
        prefetch_factor=WORKER_PREFETCH if workers else None,
        persistent_workers=workers > 0,  # a small set read twice must not fork workers again
        pin_memory=torch.cuda.is_available(),
    )


def time_loader(loader, device: str, max_seconds: float, max_batches: int) -> tuple[float, float]:
    """(samples/s, audio-seconds/s) after the first batch, over as many epochs as it takes
    to reach ``max_batches`` or ``max_seconds`` (a small set is read more than once).

    On a GPU each batch is moved there (and int16 becomes float32 there); on the CPU the
    batch is taken as the loader hands it over, and the int16-to-float32 step is part of
    the training step the step benchmark times.
    """
    batches = iter(loader)
    next(batches)
    samples, audio, count = 0, 0.0, 0
    started = time.perf_counter()
    while count < max_batches and time.perf_counter() - started < max_seconds:
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            continue
        moved = to_device(batch, device) if device != "cpu" else batch
        samples += len(moved["key"])
        audio += float(moved["lengths"].sum()) / moved["sample_rate"]
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = max(time.perf_counter() - started, 1e-9)
    return samples / elapsed, audio / elapsed


def measure_loaders(
    sets: dict[str, Callable[[str], Dataset]],
    workers: list[int],
    batch_sizes: list[int],
    repeats: int,
    device: str = "cpu",
    max_seconds: float = 1.5,
    threads: int = 2,
    cold_roots: tuple[Path, ...] = (),
) -> list[LoaderRow]:
    """``sets`` maps a name to a function building its dataset for a dtype (or None if the
    name does not take that dtype). Map-style sets are also timed with ``threads`` threads
    (:class:`~loaders.threaded.ThreadedLoader`) at the largest batch size. With
    ``cold_roots``, those files' cached pages are dropped before every timed run."""
    rows = []

    def timed(make, b: int, n: int) -> tuple[float, float]:
        if cold_roots:
            drop(*cold_roots)
        return time_loader(make(), device, max_seconds, max(4, n // b))

    for name, build in sets.items():
        for dtype in ("float32", "int16"):
            dataset = build(dtype)
            if dataset is None:
                continue
            n = len(dataset)
            plan = []  # (workers, batch, make, threads, shared)
            for w in workers:
                for b in batch_sizes:
                    make = lambda d=dataset, b=b, w=w: _loader(d, b, w, w > 0)  # noqa: E731
                    plan.append((w, b, make, False, w > 0))
            if max(workers) > 0:  # the DataLoader's own hand-over, to compare
                w, b = max(workers), max(batch_sizes)
                plan.append((w, b, lambda d=dataset, b=b, w=w: _loader(d, b, w), False, False))
            if threads and not isinstance(dataset, IterableDataset):
                b = max(batch_sizes)
                make = lambda d=dataset, b=b: ThreadedLoader(  # noqa: E731
                    d, b, num_threads=threads, prefetch=4, shuffle=True
                )
                plan.append((threads, b, make, True, False))
            runs: list[list[tuple[float, float]]] = [[] for _ in plan]
            for _ in range(repeats):  # alternated, so a slow spell hits every setting alike
                for i, (_w, b, make, _t, _s) in enumerate(plan):
                    runs[i].append(timed(make, b, n))
            for (w, b, _make, is_threads, shared), timings in zip(plan, runs, strict=True):
                speed = statistics.median(r[0] for r in timings)
                audio = statistics.median(r[1] for r in timings)
                rows.append(LoaderRow(name, dtype, w, b, speed, audio, repeats, is_threads, shared))
    return rows


def dataset_builders(sharded: Path, originals: Path) -> dict[str, Callable[[str], Dataset | None]]:
    """Every format the shard step wrote, plus the on-the-fly baseline on the original files."""

    def shard_format(name: str) -> Callable[[str], Dataset | None]:
        return lambda dtype: open_dataset(sharded / name, dtype=dtype)

    builders: dict[str, Callable[[str], Dataset | None]] = {
        "memmap": shard_format("memmap"),
        "hdf5": shard_format("hdf5"),  # audio only: the loaders' default
        "webdataset": shard_format("webdataset"),
        "segments": shard_format("segments"),
        "mel (precomputed .npy)": lambda dtype: (
            open_dataset(sharded / "mel") if dtype == "float32" else None
        ),
    }
    builders["on-the-fly mp3 (decode + resample, 5 s crops)"] = lambda dtype: (
        open_dataset(originals, crop_seconds=5.0, dtype=dtype) if dtype == "float32" else None
    )
    return builders


def raw_ceiling(memmap_file: Path, batch_size: int = 32, seconds: float = 1.0) -> float:
    """numpy reading the same int16 rows from page cache, random batches: samples/s."""
    array = np.load(memmap_file, mmap_mode="r")
    rng = np.random.default_rng(0)
    array[rng.integers(0, len(array), batch_size)]  # warm
    samples = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        block = array[np.sort(rng.integers(0, len(array), batch_size))]
        samples += len(block)
    return samples / (time.perf_counter() - started)


def _ratio(speed: float, baseline: LoaderRow | None) -> float:
    if baseline is None or baseline.samples_per_second <= 0:
        return float("nan")
    return speed / baseline.samples_per_second


def best_rows(rows: list[LoaderRow]) -> dict[str, LoaderRow]:
    best: dict[str, LoaderRow] = {}
    for row in rows:
        if row.name not in best or row.samples_per_second > best[row.name].samples_per_second:
            best[row.name] = row
    return best


def loader_tables(rows: list[LoaderRow]) -> str:
    best = best_rows(rows)
    baseline = next((r for n, r in best.items() if n.startswith("on-the-fly")), None)
    lines = [
        "| format | best samples/s | audio-s/s | parallelism | batch | transport | x on-the-fly |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for row in sorted(best.values(), key=lambda r: -r.samples_per_second):
        ratio = _ratio(row.samples_per_second, baseline)
        lines.append(
            f"| {row.name} | {row.samples_per_second:.0f} | {row.audio_seconds_per_second:.0f} "
            f"| {row.parallelism} | {row.batch_size} | {row.dtype} | {ratio:.0f}x |"
        )
    lines += ["", "Samples/s by parallelism (best batch size and transport for each):", ""]
    columns = sorted({(r.threads, r.workers, r.shared) for r in rows})
    names = [
        f"{w} threads" if t else f"{w} workers" + (", shared slots" if s else "")
        for t, w, s in columns
    ]
    lines.append("| format | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for name in best:
        cells = []
        for column in columns:
            found = [
                r.samples_per_second
                for r in rows
                if r.name == name and (r.threads, r.workers, r.shared) == column
            ]
            cells.append(f"{max(found):.0f}" if found else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recommendation(rows: list[LoaderRow], cpu_count: int) -> str:
    """Plain words: which format, parallelism and batch size, and why, from this run."""
    best = best_rows(rows)
    top = max(best.values(), key=lambda r: r.samples_per_second)
    baseline = next((r for n, r in best.items() if n.startswith("on-the-fly")), None)
    lines = [
        f"On this machine ({cpu_count} cores) train from **{top.name}** with "
        f"**{top.parallelism}**, batch size **{top.batch_size}** and **{top.dtype}** transport: "
        f"{top.samples_per_second:.0f} samples/s"
        + (
            f", {_ratio(top.samples_per_second, baseline):.0f}x decoding the original "
            f"files on the fly ({baseline.samples_per_second:.0f} samples/s at best)."
            if baseline
            else "."
        )
    ]

    def fastest(name: str, with_workers: bool) -> float:
        speeds = [
            r.samples_per_second
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
    return " ".join(lines)
