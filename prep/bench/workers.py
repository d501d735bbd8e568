"""Do DataLoader worker processes make a format slower than reading in the trainer?

``python -m prep.bench.workers [SHARDS] [ORIGINALS]``: every format ``make bench`` sharded
(default ``bench-results/shards``), read with 0, 1 and 2 worker processes (shared slots),
batch 32, the settings alternated repeat by repeat, median of 5: a narrower and steadier
look at the one question than the full loader sweep. Run ``make bench`` first.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from prep.bench.loader_bench import WORKER_PREFETCH, dataset_builders, time_loader

FORMATS = {  # name in the sweep -> transport
    "memmap": "int16",
    "hdf5": "int16",
    "segments": "int16",
    "mel (precomputed .npy)": "float32",
    "webdataset": "int16",
}


def compare(shards: Path, originals: Path, repeats: int = 5, seconds: float = 1.0) -> str:
    """A markdown table: items/s by worker count, and 2 workers as a ratio to none."""
    from loaders import batch_loader

    builders = dataset_builders(shards, originals)
    datasets = {name: builders[name](dtype) for name, dtype in FORMATS.items()}
    speeds: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for name, dataset in datasets.items():
            for workers in (0, 1, 2):
                loader = batch_loader(
                    dataset,
                    32,
                    shuffle=name != "webdataset",
                    shared_slots=workers > 0,
                    num_workers=workers,
                    prefetch_factor=WORKER_PREFETCH if workers else None,
                    persistent_workers=workers > 0,
                )
                speed = time_loader(loader, "cpu", seconds, 10**9)[0]
                speeds.setdefault((name, workers), []).append(speed)
    lines = [
        "| format | 0 workers | 1 worker | 2 workers | 2 workers / none |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in datasets:
        none, one, two = (statistics.median(speeds[(name, w)]) for w in (0, 1, 2))
        lines.append(f"| {name} | {none:,.0f} | {one:,.0f} | {two:,.0f} | {two / none:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    shards = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench-results/shards")
    originals = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("bench-results/corpus/clips")
    print(compare(shards, originals))
