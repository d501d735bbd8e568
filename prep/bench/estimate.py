"""How long a bench run will take, said before it starts: each phase from the corpus size
and the mode, with costs measured by this bench's own phase timings on a quiet 2-core
machine (the report's "Where the bench's time went"), scaled to this machine's cores."""

from __future__ import annotations

from prep.bench.loader_bench import loader_plan
from prep.bench.options import BenchOptions
from prep.bench.shard_bench import bench_formats
from prep.parallel import default_jobs

MEASURED_CORES = 2
# seconds on a quiet 2-core machine; refit from results.csv's "bench" rows when they drift
GENERATE_PER_AUDIO_SECOND = 0.0145  # stereo 44.1 kHz corpus, mostly mp3, both cores
GENERATE_PER_LONG_SECOND = 0.004  # the mono 22.05 kHz mp3 for the memory check
CONVERT_PER_AUDIO_SECOND = 0.0045  # prep and ffmpeg, one repeat, both cores
CONVERT_RUN = 0.6  # a process starting, per set, method and repeat
MEMORY_PER_LONG_SECOND = 0.003
SHARD_RUN = 3.5  # a prep shard process (webdataset and mel import torch)
SHARD_PER_AUDIO_SECOND = 0.0007  # per run
SHARD_RUNS_FROM_ORIGINAL = 5  # the four compared formats, each alone and together
SHARD_SYSTEM_IMPORT = {"tensordict": 8.0}  # a writer whose system is slow to import
LOADER_OVERHEAD = 0.25  # per timed run: building the loader, workers, the first batch
STEP_LOADERS = 10  # 6 formats, 3 mel ways, DALI's best audio and its mel; tensordict besides
STEP_LOADER = 1.5  # building a loader and its model
STEP_SECONDS = 0.2  # one autoencoder or classifier step, batch 32 of 5 s, on this CPU
LOADER_SETS = {"memmap": 2, "hdf5": 2, "segments": 2, "webdataset": 2, "mel": 1, "on-the-fly": 1}
DALI_PIPELINES = 4  # memmap, segments, webdataset, memmap with mel: at 1 thread and at most
ECOSYSTEM_LOADERS = 1  # lhotse, with no workers and at most; datasets too when hf is sharded
SYSTEM_IMPORTS = 10.0  # importing tensordict, DALI and lhotse once, in the bench process
DATASETS_OPEN = 8.0  # importing datasets and its Arrow copy of hf/, once
DECODE_RUN = 0.6  # one decoder over one sample (a few clips or one long file), per repeat


def loader_runs(options: BenchOptions) -> int:
    """How many timed loader runs the sweep makes (as :func:`measure_loaders` plans), the
    other systems' settings included."""
    workers, sizes, _ = options.loader_grid()
    formats = bench_formats(quick=options.quick)
    sets = {**LOADER_SETS, **({"tensordict": 1} if "tensordict" in formats else {})}
    runs = 0
    for name, dtypes in sets.items():
        iterable = name == "webdataset"
        runs += len(loader_plan(workers, sizes, 2, iterable))
        if dtypes == 2:  # the second transport at the largest batch only
            runs += len(loader_plan(workers, [max(sizes)], 2, iterable))
    settings = len({1, max(1, max(workers))}) * DALI_PIPELINES
    settings += len({0, max(workers)}) * (ECOSYSTEM_LOADERS + ("hf" in formats))
    return (runs + settings) * options.repeats


def shard_runs(options: BenchOptions) -> tuple[int, float]:
    """How many ``prep shard`` runs the shard phase makes, and the seconds their systems'
    imports add."""
    formats = bench_formats(quick=options.quick)
    runs = len(formats) + 1 + (0 if options.quick else SHARD_RUNS_FROM_ORIGINAL)
    return runs, sum(SHARD_SYSTEM_IMPORT.get(name, 0.0) for name in formats)


def expected_phases(
    options: BenchOptions, audio_seconds: float, long_seconds: float, generate: bool
) -> dict[str, float]:
    """Expected wall seconds of each phase on this machine."""
    scale = MEASURED_CORES / max(1, min(default_jobs(), options.jobs or default_jobs()))
    seconds = options.loader_grid()[2]
    step_scale = options.step_batch / 32 * options.segment_seconds / 5
    phases = {}
    if generate:
        cpu = GENERATE_PER_AUDIO_SECOND * audio_seconds + GENERATE_PER_LONG_SECOND * long_seconds
        phases["generating the demo corpus (first run only)"] = 3 + cpu * scale
    phases["convert and memory"] = (
        options.repeats * (CONVERT_PER_AUDIO_SECOND * audio_seconds * scale + 8 * CONVERT_RUN)
        + MEMORY_PER_LONG_SECOND * long_seconds
        + 6 * options.repeats * DECODE_RUN  # the decode-only table: 3 decoders, 2 samples
    )
    runs, imports = shard_runs(options)
    phases["shard"] = imports + runs * (SHARD_RUN + SHARD_PER_AUDIO_SECOND * audio_seconds * scale)
    formats = bench_formats(quick=options.quick)
    phases["loaders"] = (
        loader_runs(options) * (seconds + LOADER_OVERHEAD)
        + SYSTEM_IMPORTS
        + ("hf" in formats) * DATASETS_OPEN
    )
    step = STEP_SECONDS * step_scale * 2 * (options.steps + 2)
    step_loaders = STEP_LOADERS + ("tensordict" in formats)
    phases["training steps"] = step_loaders * (STEP_LOADER + step)
    return phases


def expected_line(phases: dict[str, float]) -> str:
    total = sum(phases.values())
    parts = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in phases.items())
    return f"about {total / 60:.1f} minutes on this machine: {parts} (minutes)"
