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

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from loaders import open_dataset, pad_collate, to_device


@dataclass
class LoaderRow:
    name: str
    dtype: str
    workers: int
    batch_size: int
    samples_per_second: float
    audio_seconds_per_second: float
    repeats: int


def _loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    shuffle = not isinstance(dataset, IterableDataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=pad_collate,
        generator=torch.Generator().manual_seed(0) if shuffle else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


def time_loader(
    loader: DataLoader, device: str, max_seconds: float, max_batches: int
) -> tuple[float, float]:
    """(samples/s, audio-seconds/s) after the first batch."""
    batches = iter(loader)
    first = next(batches)
    to_device(first, device)
    samples = 0
    audio = 0.0
    started = time.perf_counter()
    for count, batch in enumerate(batches, 1):
        moved = to_device(batch, device)
        samples += len(moved["key"])
        audio += float(moved["lengths"].sum()) / moved["sample_rate"]
        if count >= max_batches or time.perf_counter() - started > max_seconds:
            break
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
) -> list[LoaderRow]:
    """``sets`` maps a name to a function building its dataset for a dtype (or None if the
    name does not take that dtype)."""
    rows = []
    for name, build in sets.items():
        for dtype in ("float32", "int16"):
            dataset = build(dtype)
            if dataset is None:
                continue
            for w in workers:
                for b in batch_sizes:
                    n = len(dataset)
                    runs = [
                        time_loader(_loader(dataset, b, w), device, max_seconds, max(2, n // b - 1))
                        for _ in range(repeats)
                    ]
                    rows.append(
                        LoaderRow(
                            name,
                            dtype,
                            w,
                            b,
                            statistics.median(r[0] for r in runs),
                            statistics.median(r[1] for r in runs),
                            repeats,
                        )
                    )
    return rows


def dataset_builders(sharded: Path, originals: Path) -> dict[str, Callable[[str], Dataset | None]]:
    """Every format the shard step wrote, plus the on-the-fly baseline on the original files."""

    def shard_format(name: str) -> Callable[[str], Dataset | None]:
        return lambda dtype: open_dataset(sharded / name, dtype=dtype)

    builders: dict[str, Callable[[str], Dataset | None]] = {
        name: shard_format(name) for name in ("memmap", "hdf5", "webdataset", "segments")
    }
    builders["on-the-fly mp3 (decode + resample, 5 s crops)"] = lambda dtype: (
        open_dataset(originals, crop_seconds=5.0, dtype=dtype) if dtype == "float32" else None
    )
    return builders


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
        "| format | best samples/s | audio-s/s | workers | batch | transport | x on-the-fly |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in sorted(best.values(), key=lambda r: -r.samples_per_second):
        ratio = row.samples_per_second / baseline.samples_per_second if baseline else float("nan")
        lines.append(
            f"| {row.name} | {row.samples_per_second:.0f} | {row.audio_seconds_per_second:.0f} "
            f"| {row.workers} | {row.batch_size} | {row.dtype} | {ratio:.0f}x |"
        )
    lines += ["", "Workers against none (best batch size and transport for each):", ""]
    worker_counts = sorted({r.workers for r in rows})
    lines.append("| format | " + " | ".join(f"{w} workers" for w in worker_counts) + " |")
    lines.append("|---|" + "---:|" * len(worker_counts))
    for name in best:
        cells = []
        for w in worker_counts:
            candidates = [r.samples_per_second for r in rows if r.name == name and r.workers == w]
            cells.append(f"{max(candidates):.0f}" if candidates else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
