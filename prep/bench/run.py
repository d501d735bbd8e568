"""The benchmark run: build (or reuse) the demo corpus, measure, write results and report."""

from __future__ import annotations

import csv
import json
import logging
import platform
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from loaders import batch_loader
from prep.bench.cache import describe, warm
from prep.bench.convert_bench import (
    ConvertRow,
    DecodeRow,
    MemoryRow,
    audio_seconds,
    decode_samples,
    measure_decoders,
    measure_memory,
    measure_set,
)
from prep.bench.estimate import expected_line, expected_phases
from prep.bench.loader_bench import (
    MEL_NAME,
    LoaderRow,
    Pipeline,
    Source,
    best_rows,
    build_loader,
    dataset_builders,
    loader_tables,
    measure_loaders,
    raw_ceiling,
    recommendation,
)
from prep.bench.options import BenchOptions
from prep.bench.phases import Phase, PhaseClock
from prep.bench.plots import plot_all
from prep.bench.shard_bench import (
    ShardRow,
    bench_formats,
    ensure_converted,
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
from prep.bench.systems import DALI_MEL_NAME, DATASETS_NAME, LHOTSE_NAME, other_loaders
from prep.democorpus import (
    CorpusSpec,
    corpus_files,
    corpus_ready,
    make_corpus,
    make_two_hour_file,
)
from prep.parallel import default_jobs
from prep.sources import discover

log = logging.getLogger(__name__)

QUICK_CORPUS = CorpusSpec(
    clips=24, clip_seconds=(1.0, 3.0), long_per_codec=1, long_seconds=(20, 30)
)
QUICK_NOTE = "quick mode: a smoke test of the bench, not figures to act on"
PLOTS = ("throughput_by_workers", "throughput_by_batch_size", "throughput_by_format", "data_stall")


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


def _sets(
    options: BenchOptions, clock: PhaseClock
) -> tuple[list[tuple[str, Path]], Path | None, Path]:
    """The sets to measure, the long file for the memory check, and the corpus root;
    logs how long the whole run should take before the first of it."""
    if options.src is not None:
        paths = [s.path for s in discover(options.src)]
        phases = expected_phases(options, audio_seconds(paths), 0.0, generate=False)
        log.info("%s", expected_line(phases))
        return [("your audio", options.src)], None, options.src
    corpus_root = options.out / "corpus"
    spec = QUICK_CORPUS if options.quick else CorpusSpec()
    seconds = 120.0 if options.quick else 7200.0
    long_name = "quick-2min.mp3" if options.quick else "two-hours.mp3"
    long_file = options.out / "corpus-long" / long_name
    files = corpus_files(corpus_root, spec)
    ready = corpus_ready(corpus_root, spec) and long_file.exists()
    audio = sum(f.seconds for f in files)
    log.info("%s", expected_line(expected_phases(options, audio, seconds, generate=not ready)))
    log.info("demo corpus: %s (generated once, then reused)", corpus_root)
    with clock.phase("generate demo corpus"):  # the long file in the same pool
        make_corpus(
            corpus_root, spec, options.jobs, also=[partial(make_two_hour_file, long_file, seconds)]
        )
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
    sources: dict[str, Source | Pipeline]
    phases: list[Phase] = field(default_factory=list)
    decode: list[DecodeRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what this run left out, and why


def write_results(out: Path, results: BenchResults) -> None:
    """``results.csv``: one row per measured figure, each with the machine's description.

    Loader speeds are items (segments) per second, ``items_per_s``; a step whose fed time
    was not above its ideal time has ``within noise`` as its stall."""
    machine = _machine(results.device)
    records: list[tuple] = []
    for row in results.convert:
        for method, speed in (
            ("prep convert", row.prep_speed),
            ("ffmpeg per file", row.ffmpeg_speed),
            ("decode only, one core", row.decode_only_speed),
        ):
            records.append(("convert", row.name, method, "x_real_time", f"{speed:.1f}"))
    for d in results.decode:
        records.append(("decode", d.sample, d.decoder, "x_real_time", f"{d.speed:.1f}"))
    for mem in results.memory:
        hours = f"{mem.audio_seconds / 3600:.2f} h file"
        records.append(("memory", hours, mem.name, "peak_rss_mb", f"{mem.peak_rss_mb:.0f}"))
    for row in results.shard:
        records.append(("shard", "converted set", row.name, "seconds", f"{row.seconds:.2f}"))
        records.append(("shard", "converted set", row.name, "disk_bytes", row.disk_bytes))
    for r in results.loader:
        method = f"{r.parallelism}, batch {r.batch_size}, {r.dtype}"
        records.append(("loader", r.name, method, "items_per_s", f"{r.items_per_second:.1f}"))
        records.append(
            ("loader", r.name, method, "audio_seconds_per_s", f"{r.audio_seconds_per_second:.1f}")
        )
    ceiling = ("loader", "page-cache ceiling", "numpy fancy index, batch 32", "items_per_s")
    records.append((*ceiling, f"{results.ceiling:.1f}"))
    for r in results.steps:
        stall = "within noise" if r.stall is None else f"{100 * r.stall:.3g}"
        records.append(("step", r.consumer, r.loader, "ideal_ms", f"{r.ideal_ms:.2f}"))
        records.append(("step", r.consumer, r.loader, "actual_ms", f"{r.actual_ms:.2f}"))
        records.append(("step", r.consumer, r.loader, "stall_percent", stall))
    for p in results.phases:
        records.append(("bench", p.name, "this run", "wall_seconds", f"{p.wall_seconds:.1f}"))
        records.append(("bench", p.name, "this run", "cpu_seconds", f"{p.cpu_seconds:.1f}"))
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "set", "method", "metric", "value", *machine])
        for record in records:
            writer.writerow([*record, *machine.values()])


def convert_table(rows: list[ConvertRow], jobs: int, quick: bool) -> str:
    lines = [
        f"| set | files | audio | prep convert -j {jobs} | ffmpeg per file, {jobs} at a time "
        "| prep / ffmpeg | decode only, one core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}x"
        if quick:  # a fraction of a second of start-up against seconds of audio work
            ratio = f"not measured: {r.audio_seconds / 60:.1f} min of audio, start-up dominates"
        lines.append(
            f"| {r.name} | {r.files} | {r.audio_seconds / 60:.1f} min | {r.prep_speed:.0f}x "
            f"| {r.ffmpeg_speed:.0f}x | {ratio} | {r.decode_only_speed:.0f}x |"
        )
    return "\n".join(lines)


def decode_table(rows: list[DecodeRow]) -> str:
    if not rows:
        return "(no decoding measured)"
    decoders = list(dict.fromkeys(r.decoder for r in rows))
    lines = [
        "| sample | audio | " + " | ".join(decoders) + " |",
        "|---|---:|" + "---:|" * len(decoders),
    ]
    for sample in dict.fromkeys(r.sample for r in rows):
        speed = {r.decoder: r for r in rows if r.sample == sample}
        cells = [f"{speed[d].speed:.0f}x" if d in speed else "-" for d in decoders]
        seconds = next(iter(speed.values())).audio_seconds
        lines.append(f"| {sample} | {seconds / 60:.1f} min | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes_text(notes: list[str]) -> str:
    if not notes:
        return ""
    return "\nLeft out of this run:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def memory_table(rows: list[MemoryRow], quick: bool) -> str:
    if not rows:
        return "(no long file measured)"
    lines = ["| method | file | peak RSS |", "|---|---:|---:|"]
    for r in rows:
        rss = f"{r.peak_rss_mb:.0f} MB"
        if quick:  # a whole-file read grows with the file; a short file hides it
            minutes = r.audio_seconds / 60
            rss += f" (not measured: a {minutes:.0f}-minute file says nothing of 2 hours)"
        lines.append(f"| {r.name} | {r.audio_seconds / 3600:.2f} h | {rss} |")
    return "\n".join(lines)


def phase_table(phases: list[Phase]) -> str:
    lines = ["| phase | wall | CPU (all cores, children included) |", "|---|---:|---:|"]
    for p in phases:
        lines.append(f"| {p.name} | {p.wall_seconds:.0f} s | {p.cpu_seconds:.0f} s |")
    wall = sum(p.wall_seconds for p in phases)
    cpu = sum(p.cpu_seconds for p in phases)
    lines.append(f"| total | {wall:.0f} s | {cpu:.0f} s |")
    return "\n".join(lines)


ECOSYSTEM_CALLS = {
    LHOTSE_NAME: (
        f"{LHOTSE_NAME} (`SimpleCutSampler(cuts, max_cuts=batch)`, `collate_audio`, in "
        "order, as a sampler shuffle first buffers up to 10,000 cuts; with workers as "
        "Lhotse's Shar recipe has it: `from_shar(..., split_for_dataloading=True)` and the "
        "sampler in an `IterableDatasetWrapper`, each worker reading shards of its own)"
    ),
    DATASETS_NAME: (
        f'{DATASETS_NAME} (`load_dataset("parquet", data_dir=hf/)`, each item decoded by '
        "torchcodec, a torch DataLoader)"
    ),
}


def _counts(values: set[int]) -> str:
    return " and ".join(str(v) for v in sorted(values))


def other_systems_text(rows: list[LoaderRow]) -> str:
    """What the other systems' rows (DALI's, other ecosystems') are, when this run has any."""
    others = [r for r in rows if r.via or r.compared]
    if not others:
        return ""
    batch = max(r.batch_size for r in others)
    parts = [f"\nOther systems' loaders ran at batch {batch}, alternated with the rows above."]
    dali_threads = {r.workers for r in rows if r.via == "DALI"}
    if dali_threads:
        parts.append(
            'The DALI rows are `loaders.dali_loader(folder, batch, shuffle=True, dtype="int16", '
            f"num_threads=N)` with N = {_counts(dali_threads)}: DALI's own readers (memmap fed "
            "by our batch reads), its threads in this process; the mel one makes log-mel in "
            "the pipeline too."
        )
    compared = list(dict.fromkeys(r.name for r in rows if r.compared))
    if compared:
        workers = {r.workers for r in rows if r.compared}
        parts.append(
            "Other ecosystems' own loaders, shown for comparison and never recommended, "
            f"float32, with {_counts(workers)} DataLoader workers: "
            + "; ".join(ECOSYSTEM_CALLS[n] for n in compared)
            + "."
        )
    return " ".join(parts) + "\n"


def recommendation_block(options: BenchOptions, results: BenchResults) -> str:
    """The recommendation in words, then the code that builds its loader."""
    words, code = recommendation(
        results.loader,
        default_jobs(),
        results.sources,
        pin_memory=results.device.startswith("cuda"),
        bold=not options.quick,
    )
    lead = f"{QUICK_NOTE}. " if options.quick else ""
    return f"{lead}{words}\n\n```python\n{code}\n```"


def write_report(out: Path, options: BenchOptions, results: BenchResults) -> Path:
    machine = _machine(results.device)
    jobs = options.jobs or default_jobs()
    top = max(best_rows(results.loader).values(), key=lambda r: r.items_per_second)
    workers, batch_sizes, seconds = options.loader_grid()
    segment = f"{options.segment_seconds:g} s"

    def image(name: str, alt: str) -> str:
        return f"![{alt}]({name}.png)" if (out / f"{name}.png").exists() else ""

    header = f"\n> {QUICK_NOTE}.\n" if options.quick else ""
    shard_note = ""
    if options.quick:
        shard_note = (
            "\nQuick mode leaves out the runs from the original audio (five more processes)."
        )
    if options.repeats == 1:
        runs = "Each method ran once."
    else:
        runs = f"Each method ran {options.repeats} times, alternated, median shown."
    text = f"""# audioprep benchmark
{header}
## Recommendation

{recommendation_block(options, results)}

Machine: {machine["cpu_count"]} cores ({machine["machine"]}), Python {machine["python"]},
torch {machine["torch"]}, device {machine["device"]}.
Mode: {options.mode.value}; every figure below comes from this run. Page cache:
{describe(options.cold)}. {runs}
Convert speeds are audio-seconds per wall-second ("x real time"); loader speeds are items
(segments of {segment}) per second.

## Convert: `prep convert` against one ffmpeg process per file

{convert_table(results.convert, jobs, options.quick)}

The ffmpeg side runs `ffmpeg -i IN -ac 1 -ar 16000 -sample_fmt s16 OUT.wav` once per file,
{jobs} at a time. "decode only" is decoding alone on one core, by the decoder prep picks
(libsndfile; PyAV for Vorbis and Opus), with no mixdown, resampling or writing: the
ceiling for in-process decoding.

## Decode only: in process against a decoder process

{decode_table(results.decode)}

Audio-seconds per CPU-second ("x real time" on one core), the decoder's own process
included: every block decoded (`open_audio(path, decoder)`), nothing else, the decoders
alternated on the same files: prep's pick (libsndfile; PyAV for Vorbis and Opus), an
`ffmpeg` process piping to it, and a `gst-launch-1.0` process (`--decoder gstreamer`). On
the clips starting a process per file dominates; the long file shows each codec path's rate.

## Peak memory converting one long file

{memory_table(results.memory, options.quick)}

## Shard: each training format from the converted set ({segment} segments)

{shard_table(results.shard)}

Each line is one `prep shard` process, torch import included where mel is computed.
"4 audio formats" are segments, webdataset, hdf5 and memmap: the same bytes whether
written by one call (each source decoded once) or by one call each (decoded four times).{shard_note}

## Loaders: items per second, {segment} segments at 16 kHz

{loader_tables(results.loader)}

Every loader reads the same segments (the on-the-fly baseline decodes the original files
they came from and crops {segment}) in shuffled order. No workers and
{max(workers)} workers at batch sizes {", ".join(map(str, batch_sizes))}; the other worker
counts ({", ".join(map(str, workers))} in all), threads, the DataLoader's own hand-over and
the float32 transport of sets that also have int16 at batch {max(batch_sizes)}; up to
{seconds:g} s per setting. Timing starts after each loader's first batch (worker start-up
and warm-up are not counted); page cache as stated above. Memmap and HDF5 are read a batch
at a time (`loaders.batch_loader`); HDF5 and webdataset are written without mel and opened
with `with_mel=False` (audio only); "int16" transport hands the batch over as int16,
and its conversion to float32 is the device's step. The raw ceiling, numpy reading the
same bytes from page cache in random batches of 32, is {results.ceiling:,.0f} items/s: the
best loader reaches {100 * top.items_per_second / results.ceiling:.0f}% of it.

{other_systems_text(results.loader)}{notes_text(results.notes)}
{image("throughput_by_format", "throughput by format")}
{image("throughput_by_workers", "throughput by workers")}
{image("throughput_by_batch_size", "throughput by batch size")}

## Training steps: how much of each step waits for data

{step_table(results.steps)}

Device: {results.device}. Batch {options.step_batch}, {options.steps} timed steps; each
loader at its best setting above. "Ideal" is the same step with the batch (and its
features) already in device memory; data stall = 1 - ideal / actual. Where the fed step
was no slower than the ideal one the difference is timing noise, written "within noise",
not 0%. The autoencoder (segment -> 13 -> segment samples) keeps the model cheap, so
stalls show; the classifier needs log-mel, made ahead of time, after batching on the
device, or per item in CPU workers.

{image("data_stall", "data stall")}

## Where the bench's time went

{phase_table(results.phases)}
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_bench(options: BenchOptions) -> tuple[Path, str]:
    """Run every measurement; return the report's path and a short text for the terminal."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    jobs = options.jobs or default_jobs()
    clock = PhaseClock()
    notes: list[str] = []
    sets, long_file, corpus_root = _sets(options, clock)
    work = out / "work"
    convert_rows = []
    with clock.phase("convert"):
        for name, root in sets:
            log.info("measuring convert: %s", name)
            convert_rows.append(measure_set(name, root, work, jobs, options.repeats, options.cold))
    log.info("measuring decoding alone")
    with clock.phase("decode only"):
        decode_rows = measure_decoders(
            _decode_samples(options, corpus_root), options.repeats, notes
        )
    memory_rows = []
    if long_file is not None:
        log.info("measuring peak memory on %s", long_file.name)
        with clock.phase("peak memory"):
            memory_rows = measure_memory(long_file, work, jobs)
    log.info("measuring shard formats")
    with clock.phase("convert set for shard"):
        converted = ensure_converted(corpus_root, out / "converted", jobs)
    with clock.phase("shard"):
        shard_rows = measure_shard(
            converted,
            corpus_root,
            work / "shard",
            jobs,
            options.segment,
            keep=out / "shards",
            from_original=not options.quick,  # five more process start-ups: not a smoke test's
            formats=bench_formats(notes, quick=options.quick),
        )
    shutil.rmtree(work, ignore_errors=True)
    device = options.resolved_device()
    log.info("measuring loaders")
    shards = out / "shards"  # the shard phase's own runs, from the converted set
    originals = corpus_root / "clips" if (corpus_root / "clips").exists() else corpus_root
    sources = dataset_builders(shards, originals, options.segment_seconds)
    workers, batch_sizes, seconds = options.loader_grid()
    pipelines = other_loaders(shards, work / "datasets-cache", workers)
    with clock.phase("loaders"):
        if not options.cold:
            warm(shards, originals)
        loader_rows = measure_loaders(
            sources,
            workers,
            batch_sizes,
            options.repeats,
            device=device,
            max_seconds=seconds,
            cold_roots=(shards, originals) if options.cold else (),
            pipelines=pipelines,
            notes=notes,
        )
        ceiling = raw_ceiling(shards / "memmap" / "audio.npy")
    shutil.rmtree(work, ignore_errors=True)
    log.info("measuring training steps")
    with clock.phase("training steps"):
        step_rows = measure_training(
            shards, sources, pipelines, loader_rows, device, options.steps, options.step_batch
        )
    results = BenchResults(
        convert_rows,
        memory_rows,
        shard_rows,
        loader_rows,
        ceiling,
        step_rows,
        device,
        {**sources, **pipelines},
        decode=decode_rows,
        notes=notes,
    )
    with clock.phase("plots"):
        for name in PLOTS:  # a plot this run does not draw must not survive from an older one
            (out / f"{name}.png").unlink(missing_ok=True)
        plot_all(out, loader_rows, step_rows)
    results.phases = clock.phases
    write_results(out, results)
    report = write_report(out, options, results)
    if options.tensorboard is not None:
        log_tensorboard(out / "results.csv", options.tensorboard)
    summary = loader_tables(loader_rows).split("\n\n")[0]
    lead = f"{QUICK_NOTE}\n\n" if options.quick else ""
    return report, lead + summary + "\n\n" + recommendation_block(options, results)


def _decode_samples(options: BenchOptions, corpus_root: Path) -> dict[str, list[Path]]:
    """A few clips and one long file of the demo corpus (its long mp3s: its main codec);
    with ``--src``, a few of its files and its longest."""
    if options.src is not None:
        paths = [s.path for s in discover(options.src)]
        return decode_samples(paths, [max(paths, key=lambda p: audio_seconds([p]))])
    clips = [s.path for s in discover(corpus_root / "clips")]
    return decode_samples(clips, [s.path for s in discover(corpus_root / "long" / "mp3")])


def log_tensorboard(results_csv: Path, logdir: Path) -> None:
    """``results.csv``'s figures as TensorBoard scalars at step 0, through
    :func:`loaders.lightning.log_bench_scalars` (a stall "within noise" has no number,
    so no scalar: never a 0)."""
    from loaders.lightning import log_bench_scalars  # lightning and tensorboard: only here

    logdir.mkdir(parents=True, exist_ok=True)
    count = log_bench_scalars(results_csv, logdir, step=0)
    log.info("tensorboard: %d scalars in %s (tensorboard --logdir %s)", count, logdir, logdir)


def measure_training(
    shards: Path,
    sources: dict[str, Source],
    pipelines: dict[str, Pipeline],
    loader_rows: list[LoaderRow],
    device: str,
    steps: int,
    batch_size: int = 32,
) -> list[StepRow]:
    """Both consumers, each loader at its best setting from the sweep, at ``batch_size``:
    every format, the fastest DALI pipeline (audio) and DALI's mel pipeline; other
    ecosystems' loaders are not fed to the steps (shown for comparison only)."""
    best_of_all = best_rows(loader_rows)
    best = {name: row for name, row in best_of_all.items() if name in sources}
    pin = device.startswith("cuda")
    fmt = json.loads((shards / "mel" / "format.json").read_text(encoding="utf-8"))

    def loader(row: LoaderRow):
        if row.name in pipelines:
            return pipelines[row.name].loader(batch_size, row.workers)
        return build_loader(row, sources[row.name](row.dtype), batch_size, pin)

    def label(row: LoaderRow) -> str:
        return f"{row.name} ({row.parallelism}, {row.dtype})"

    audio_rows = [row for name, row in best.items() if name != MEL_NAME]
    dali_audio = [
        row for row in best_of_all.values() if row.via == "DALI" and row.name != DALI_MEL_NAME
    ]
    if dali_audio:
        audio_rows.append(max(dali_audio, key=lambda r: r.items_per_second))
    audio = {label(row): loader(row) for row in audio_rows}
    segment = fmt["segment_samples"]
    rows = measure_steps(
        "linear autoencoder", lambda: LinearAutoencoder(segment), audio, device, steps
    )
    mel_row, memmap_row = best[MEL_NAME], best["memmap"]
    after_batching = f"memmap, mel after batching on {device}"
    mel_loaders = {
        f"precomputed mel ({mel_row.parallelism})": loader(mel_row),
        after_batching: loader(memmap_row),
        f"memmap, CPU mel in {default_jobs()} workers": batch_loader(
            MelInWorkers(sources["memmap"]("float32"), fmt["mel"]),
            batch_size,
            shuffle=True,
            num_workers=default_jobs(),
            prefetch_factor=4,
            persistent_workers=True,
        ),
    }
    if DALI_MEL_NAME in best_of_all:
        dali_mel = best_of_all[DALI_MEL_NAME]
        mel_loaders[f"{DALI_MEL_NAME} ({dali_mel.parallelism})"] = loader(dali_mel)
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
