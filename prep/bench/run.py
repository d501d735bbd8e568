"""The benchmark run: build (or reuse) the demo corpus, measure, write results and report."""

from __future__ import annotations

import csv
import json
import logging
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from loaders import ThreadedLoader, batch_loader
from prep.bench.cache import describe, warm
from prep.bench.convert_bench import ConvertRow, MemoryRow, measure_memory, measure_set
from prep.bench.loader_bench import (
    WORKER_PREFETCH,
    LoaderRow,
    best_rows,
    dataset_builders,
    loader_tables,
    measure_loaders,
    raw_ceiling,
    recommendation,
)
from prep.bench.plots import plot_all
from prep.bench.shard_bench import (
    ShardRow,
    ensure_converted,
    ensure_shards,
    measure_shard,
    shard_table,
)
from prep.bench.step_bench import (
    LinearAutoencoder,
    MelClassifier,
    MelInWorkers,
    StepRow,
    measure_steps,
    step_table,
)
from prep.democorpus import CorpusSpec, make_corpus, make_two_hour_file
from prep.parallel import default_jobs

log = logging.getLogger(__name__)

QUICK_CORPUS = CorpusSpec(
    clips=24, clip_seconds=(1.0, 3.0), long_per_codec=1, long_seconds=(20, 30)
)


@dataclass(frozen=True)
class BenchOptions:
    out: Path = Path("bench-results")
    src: Path | None = None
    mode: str = "default"  # quick | default | full
    jobs: int = 0
    device: str = "auto"  # auto | cpu | cuda
    cold: bool = False  # drop the files' cached pages before each timed run

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    @property
    def steps(self) -> int:
        return {"quick": 4, "default": 15, "full": 40}[self.mode]

    @property
    def repeats(self) -> int:
        return {"quick": 1, "default": 2, "full": 3}[self.mode]

    def loader_grid(self) -> tuple[list[int], list[int], float]:
        """DataLoader workers, batch sizes, and seconds per timed configuration."""
        cores = default_jobs()
        if self.mode == "quick":
            return [0, 2], [8], 0.3
        if self.mode == "full":
            return list(range(0, cores + 3)), [1, 8, 32, 64], 2.0
        return sorted({0, 1, cores}), [1, 8, 32], 1.0


def _machine(device: str) -> dict:
    """What every results row carries, so figures from different machines are not mixed."""
    import torch

    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    return {
        "cpu_count": default_jobs(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "device": f"{device} ({name})" if name else device,
    }


def _sets(options: BenchOptions) -> tuple[list[tuple[str, Path]], Path | None, Path]:
    """The sets to measure, the long file for the memory check, and the corpus root."""
    if options.src is not None:
        return [("your audio", options.src)], None, options.src
    corpus_root = options.out / "corpus"
    spec = QUICK_CORPUS if options.mode == "quick" else CorpusSpec()
    log.info("demo corpus: %s (generated once, then reused)", corpus_root)
    make_corpus(corpus_root, spec, options.jobs)
    seconds = 120.0 if options.mode == "quick" else 7200.0
    long_name = "quick-2min.mp3" if options.mode == "quick" else "two-hours.mp3"
    long_file = make_two_hour_file(options.out / "corpus-long" / long_name, seconds)
    sets = [("clips", corpus_root / "clips")]
    sets += [(f"long {codec}", corpus_root / "long" / codec) for codec in ("mp3", "ogg", "flac")]
    return sets, long_file, corpus_root


@dataclass
class BenchResults:
    """Everything one run measured; every report figure comes from here."""

    convert: list[ConvertRow]
    memory: list[MemoryRow]
    shard: list[ShardRow]
    loader: list[LoaderRow]
    ceiling: float
    steps: list[StepRow]
    device: str


def write_results(out: Path, results: BenchResults) -> None:
    """``results.csv``: one row per measured figure, each with the machine's description."""
    convert_rows, memory_rows, shard_rows = results.convert, results.memory, results.shard
    loader_rows, ceiling, step_rows = results.loader, results.ceiling, results.steps
    machine = _machine(results.device)
    records: list[tuple] = []
    for row in convert_rows:
        records += [
            ("convert", row.name, "prep convert", "x_real_time", f"{row.prep_speed:.1f}"),
            ("convert", row.name, "ffmpeg per file", "x_real_time", f"{row.ffmpeg_speed:.1f}"),
            (
                "convert",
                row.name,
                "decode only, one core",
                "x_real_time",
                f"{row.decode_only_speed:.1f}",
            ),
        ]
    for mem in memory_rows:
        hours = f"{mem.audio_seconds / 3600:.2f} h file"
        records.append(("memory", hours, mem.name, "peak_rss_mb", f"{mem.peak_rss_mb:.0f}"))
    for row in shard_rows:
        records.append(("shard", "converted set", row.name, "seconds", f"{row.seconds:.2f}"))
        records.append(("shard", "converted set", row.name, "disk_bytes", row.disk_bytes))
    for r in loader_rows:
        method = f"{r.parallelism}, batch {r.batch_size}, {r.dtype}"
        records.append(("loader", r.name, method, "samples_per_s", f"{r.samples_per_second:.1f}"))
        records.append(
            ("loader", r.name, method, "audio_seconds_per_s", f"{r.audio_seconds_per_second:.1f}")
        )
    records.append(
        (
            "loader",
            "page-cache ceiling",
            "numpy fancy index, batch 32",
            "samples_per_s",
            f"{ceiling:.1f}",
        )
    )
    for r in step_rows:
        records.append(("step", r.consumer, r.loader, "ideal_ms", f"{r.ideal_ms:.2f}"))
        records.append(("step", r.consumer, r.loader, "actual_ms", f"{r.actual_ms:.2f}"))
        records.append(("step", r.consumer, r.loader, "stall_percent", f"{100 * r.stall:.1f}"))
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "set", "method", "metric", "value", *machine])
        for record in records:
            writer.writerow([*record, *machine.values()])


def convert_table(rows: list[ConvertRow], jobs: int) -> str:
    lines = [
        f"| set | files | audio | prep convert -j {jobs} | ffmpeg per file, {jobs} at a time "
        "| prep / ffmpeg | decode only, one core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.files} | {r.audio_seconds / 60:.1f} min | {r.prep_speed:.0f}x "
            f"| {r.ffmpeg_speed:.0f}x | **{r.ratio:.2f}x** | {r.decode_only_speed:.0f}x |"
        )
    return "\n".join(lines)


def memory_table(rows: list[MemoryRow]) -> str:
    if not rows:
        return "(no long file measured)"
    lines = ["| method | file | peak RSS |", "|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.audio_seconds / 3600:.2f} h | {r.peak_rss_mb:.0f} MB |")
    return "\n".join(lines)


def write_report(out: Path, options: BenchOptions, results: BenchResults) -> Path:
    convert_rows, memory_rows, shard_rows = results.convert, results.memory, results.shard
    loader_rows, ceiling, step_rows = results.loader, results.ceiling, results.steps
    machine = _machine(results.device)
    jobs = options.jobs or default_jobs()
    top = max(best_rows(loader_rows).values(), key=lambda r: r.samples_per_second)
    text = f"""# audioprep benchmark

## Recommendation

{recommendation(loader_rows, machine["cpu_count"])}

Machine: {machine["cpu_count"]} cores ({machine["machine"]}), Python {machine["python"]},
torch {machine["torch"]}, device {machine["device"]}.
Mode: {options.mode}; every figure below comes from this run. Page cache: {describe(options.cold)}.
Each method ran {options.repeats} time(s), alternated, median shown.
Speeds are audio-seconds converted per wall-second ("x real time").

## Convert: `prep convert` against one ffmpeg process per file

{convert_table(convert_rows, jobs)}

The ffmpeg side runs `ffmpeg -i IN -ac 1 -ar 16000 -sample_fmt s16 OUT.wav` once per file,
{jobs} at a time. "decode only" is decoding alone on one core, by the decoder prep picks
(libsndfile; PyAV for Vorbis and Opus), with no mixdown, resampling or writing: the
ceiling for in-process decoding.

## Peak memory converting one long file

{memory_table(memory_rows)}

## Shard: each training format from the converted set (5 s segments)

{shard_table(shard_rows)}

Each line is one `prep shard` process, torch import included where mel is computed.
"4 audio formats" are segments, webdataset, hdf5 and memmap: the same bytes whether
written by one call (each source decoded once) or by one call each (decoded four times).

## Loaders: samples per second, 5 s segments at 16 kHz

{loader_tables(loader_rows)}

Every loader reads the same segments (the on-the-fly baseline decodes the original files
they came from and crops 5 s). Timing starts after each loader's first batch (worker
start-up and warm-up are not counted); page cache as stated above. Memmap and HDF5 are read a
batch at a time (`loaders.batch_loader`); "int16" transport hands the batch over as int16,
and its conversion to float32 is the device's step. The raw ceiling, numpy reading the
same bytes from page cache in random batches of 32, is {ceiling:.0f} samples/s: the best
loader reaches {100 * top.samples_per_second / ceiling:.0f}% of it.

![throughput by format](throughput_by_format.png)
![throughput by workers](throughput_by_workers.png)
![throughput by batch size](throughput_by_batch_size.png)

## Training steps: how much of each step waits for data

{step_table(step_rows)}

Device: {options.resolved_device()}. Batch 32; each loader at its best setting above.
"Ideal" is the same step with the batch (and its features) already in device memory;
data stall = 1 - ideal / actual. The autoencoder (80,000 -> 13 -> 80,000, about 2.1 M
parameters) keeps the model cheap, so stalls show; the classifier needs log-mel, made
ahead of time, after batching on the device, or per item in CPU workers.

![data stall](data_stall.png)
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_bench(options: BenchOptions) -> tuple[Path, str]:
    """Run every measurement; return the report's path and a short table for the terminal."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    jobs = options.jobs or default_jobs()
    sets, long_file, corpus_root = _sets(options)
    work = out / "work"
    convert_rows = []
    for name, root in sets:
        log.info("measuring convert: %s", name)
        convert_rows.append(measure_set(name, root, work, jobs, options.repeats, options.cold))
    memory_rows = []
    if long_file is not None:
        log.info("measuring peak memory on %s", long_file.name)
        memory_rows = measure_memory(long_file, work)
    log.info("measuring shard formats")
    converted = ensure_converted(corpus_root, out / "converted", jobs)
    shard_rows = measure_shard(converted, corpus_root, work / "shard", jobs)
    shutil.rmtree(work, ignore_errors=True)
    device = options.resolved_device()
    log.info("measuring loaders")
    shards = ensure_shards(converted, out / "shards", jobs)
    originals = corpus_root / "clips" if (corpus_root / "clips").exists() else corpus_root
    workers, batch_sizes, seconds = options.loader_grid()
    if not options.cold:
        warm(shards, originals)
    loader_rows = measure_loaders(
        dataset_builders(shards, originals),
        workers,
        batch_sizes,
        options.repeats,
        device=device,
        max_seconds=seconds,
        cold_roots=(shards, originals) if options.cold else (),
    )
    ceiling = raw_ceiling(shards / "memmap" / "audio.npy")
    log.info("measuring training steps")
    step_rows = measure_training(shards, originals, loader_rows, device, options.steps)
    results = BenchResults(
        convert_rows, memory_rows, shard_rows, loader_rows, ceiling, step_rows, device
    )
    plot_all(out, loader_rows, step_rows)
    write_results(out, results)
    report = write_report(out, options, results)
    summary = loader_tables(loader_rows).split("\n\n")[0]
    return report, summary + "\n\n" + recommendation(loader_rows, default_jobs())


def _loader_for(row: LoaderRow, dataset, batch_size: int = 32):
    """The loader a sweep row describes, at the training batch size."""
    if row.threads:
        return ThreadedLoader(
            dataset, batch_size, num_threads=row.workers, prefetch=4, shuffle=True
        )
    return batch_loader(
        dataset,
        batch_size,
        shuffle=True,
        shared_slots=row.shared,
        num_workers=row.workers,
        prefetch_factor=WORKER_PREFETCH if row.workers else None,
        persistent_workers=row.workers > 0,  # a new epoch must not fork workers again
    )


def measure_training(
    shards: Path, originals: Path, loader_rows: list[LoaderRow], device: str, steps: int
) -> list[StepRow]:
    """Both consumers, each loader at its best setting from the sweep, batch 32."""
    best = best_rows(loader_rows)
    builders = dataset_builders(shards, originals)
    fmt = json.loads((shards / "mel" / "format.json").read_text(encoding="utf-8"))
    audio = {
        f"{name} ({row.parallelism}, {row.dtype})": _loader_for(row, builders[name](row.dtype))
        for name, row in best.items()
        if not name.startswith("mel")
    }
    segment = fmt["segment_samples"]
    rows = measure_steps(
        "linear autoencoder", lambda: LinearAutoencoder(segment), audio, device, steps
    )
    mel_name = "mel (precomputed .npy)"
    mel_row, memmap_row = best[mel_name], best["memmap"]
    after_batching = f"memmap, mel after batching on {device}"
    mel_loaders = {
        f"precomputed mel ({mel_row.parallelism})": _loader_for(
            mel_row, builders[mel_name]("float32")
        ),
        after_batching: _loader_for(memmap_row, builders["memmap"](memmap_row.dtype)),
        f"memmap, CPU mel in {default_jobs()} workers": batch_loader(
            MelInWorkers(builders["memmap"]("float32"), fmt["mel"]),
            32,
            shuffle=True,
            num_workers=default_jobs(),
            prefetch_factor=4,
            persistent_workers=True,
        ),
    }
    rows += measure_steps(
        "conv classifier on log-mel",
        MelClassifier,
        mel_loaders,
        device,
        steps,
        mel=fmt["mel"],
        mel_after_batching={after_batching},
    )
    return rows
