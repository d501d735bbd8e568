"""prep bench: every output exists and is well-formed and honest (not the speed)."""

from __future__ import annotations

import csv
import importlib
import json
import re
from pathlib import Path

import pytest
import torch
from helpers import make_file, modules_loaded_by, run_prep
from torch.utils.data import IterableDataset

from prep.bench.convert_bench import ConvertRow, MemoryRow, decode_samples, measure_decoders
from prep.bench.loader_bench import (
    MEL_NAME,
    LoaderRow,
    Pipeline,
    Source,
    dataset_builders,
    loader_code,
    loader_plan,
    measure_loaders,
    recommendation,
)
from prep.bench.options import BenchOptions
from prep.bench.phases import Phase
from prep.bench.plots import plot_all
from prep.bench.run import QUICK_NOTE, BenchResults, write_report, write_results
from prep.bench.shard_bench import NOT_IN_QUICK, ShardRow, bench_formats
from prep.bench.step_bench import StepRow, step_table
from prep.bench.systems import DATASETS_NAME, LHOTSE_NAME, other_loaders
from prep.shard import ShardOptions, shard
from prep.writers import writer_names

pytestmark = pytest.mark.bench


def _code_block(text: str) -> str:
    match = re.search(r"```python\n(.*?)\n```", text, re.S)
    assert match, text
    return match.group(1)


def _first_batch(code: str) -> dict:
    namespace: dict = {}
    exec(code, namespace)
    return next(iter(namespace["loader"]))


def test_quick_bench_writes_results_and_report(tmp_path):
    out = tmp_path / "bench"
    tb = tmp_path / "tb"
    proc = run_prep("bench", "--quick", "--out", str(out), "--tensorboard", str(tb), check=True)
    assert "about" in proc.stderr and "minute" in proc.stderr  # the estimate, at the start
    assert f"report: {out / 'report.md'}" in proc.stdout
    assert proc.stdout.startswith(QUICK_NOTE)
    assert "train from " in proc.stdout and "| format | best items/s |" in proc.stdout
    code = _code_block(proc.stdout)  # the printed recommendation runs as it is
    assert str(out / "shards") in code
    batch = _first_batch(code)
    assert len(batch["key"]) == 8
    with open(out / "results.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    convert_rows = [r for r in rows if r["step"] == "convert"]
    assert {r["set"] for r in convert_rows} == {"clips", "long mp3", "long ogg", "long flac"}
    assert {r["method"] for r in convert_rows} == {
        "prep convert",
        "ffmpeg per file",
        "decode only, one core",
    }
    assert all(int(r["cpu_count"]) >= 1 and r["torch"] and r["device"] for r in rows)
    assert all(float(r["value"]) > 0 for r in rows if r["metric"] != "stall_percent")
    assert not any("sample" in r["metric"] for r in rows)  # items, not audio samples
    memory = {r["method"]: float(r["value"]) for r in rows if r["step"] == "memory"}
    assert set(memory) == {
        "prep convert -j 1 (blocks)",
        "ffmpeg -ac 1 -ar 16000",
        "soundfile.read, whole file",
    }
    decode = {(r["set"], r["method"]) for r in rows if r["step"] == "decode"}
    assert {m for _, m in decode} == {"prep's pick, in process", "ffmpeg pipe", "gstreamer pipe"}
    assert {s for s, _ in decode} == {"8 clips of 24", "one long file (long00.mp3)"}
    shard_methods = {r["method"] for r in rows if r["step"] == "shard"}
    assert {"segments", "mel", "webdataset", "hdf5", "memmap"} <= shard_methods
    assert "lhotse_shar" in shard_methods and "kaldi" not in shard_methods
    assert "tensordict" not in shard_methods  # its import alone is seconds: not in quick mode
    assert "4 audio formats, one call, from converted WAV" in shard_methods
    assert "4 audio formats, one call each, from converted WAV" in shard_methods
    assert not any("original audio" in m for m in shard_methods)  # not in quick mode
    loader_sets = {r["set"] for r in rows if r["step"] == "loader"}
    assert {"memmap", "hdf5", "webdataset", "segments", "page-cache ceiling"} <= loader_sets
    # what the baseline decoded, by codec (the quick corpus's 24 clips)
    assert "on-the-fly, mixed: 19 mp3, 3 ogg, 2 flac (decode + resample, 5 s crops)" in (
        loader_sets
    )
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "- tensordict: not in quick mode: importing tensordict takes" in report
    dali = {"DALI, 1 thread, batch 8, int16", "DALI, 2 threads, batch 8, int16"}
    ecosystem = {"0 workers, batch 8, float32", "2 workers, batch 8, float32"}
    other_systems = {
        "memmap via DALI": dali,
        "segments via DALI": dali,
        "webdataset via DALI": dali,
        "memmap via DALI, mel in the pipeline": dali,
        "lhotse CutSet.from_shar": ecosystem,
    }
    if "hf" in writer_names():
        other_systems["datasets with_format(torch)"] = ecosystem
    for name, methods in other_systems.items():  # measured, or left out with a reason
        measured = {r["method"] for r in rows if r["step"] == "loader" and r["set"] == name}
        assert measured == methods or f"- {name}: left out" in report, name
    methods = {r["method"] for r in rows if r["step"] == "loader" and r["set"] == "memmap"}
    assert {
        "0 workers, batch 8, int16",
        "2 workers, shared slots, batch 8, float32",
        "2 threads, batch 8, int16",
    } <= methods
    assert {r["metric"] for r in rows if r["step"] == "loader"} == {
        "items_per_s",
        "audio_seconds_per_s",
    }
    phases = {r["set"] for r in rows if r["step"] == "bench" and r["metric"] == "wall_seconds"}
    assert {"generate demo corpus", "convert", "shard", "loaders", "training steps"} <= phases
    steps = [r for r in rows if r["step"] == "step" and r["metric"] == "stall_percent"]
    assert {r["set"] for r in steps} == {"linear autoencoder", "conv classifier on log-mel"}
    fed_by = {(r["set"], r["method"].split(" (")[0]) for r in steps}
    assert ("linear autoencoder", "memmap") in fed_by and len(steps) >= 9
    dali_audio = {m for c, m in fed_by if c == "linear autoencoder" and m.endswith("via DALI")}
    assert len(dali_audio) == 1  # the fastest DALI pipeline of audio
    assert ("conv classifier on log-mel", "memmap via DALI, mel in the pipeline") in fed_by
    assert all(r["value"] == "within noise" or 0 < float(r["value"]) < 100 for r in steps)

    assert report.splitlines()[2] == f"> {QUICK_NOTE}."
    assert "**" not in report  # nothing in a smoke test is a figure to act on
    assert "samples/s" not in report and "items/s" in report
    assert "## Recommendation" in report and _code_block(report) == code
    assert "Page cache: warm:" in report.replace("\n", " ")
    assert "## Loaders" in report and "| 2 threads |" in report
    assert report.count("start-up dominates") == 4  # every convert ratio, caveated
    assert "not measured: a 2-minute file says nothing of 2 hours" in report
    assert "## Training steps" in report and "| data stall |" in report
    step_lines = [line for line in report.splitlines() if line.startswith(("| linear", "| conv"))]
    assert len(step_lines) >= 7 and not any(line.endswith(("| 0% |", "-")) for line in step_lines)
    assert "## Where the bench's time went" in report and "| loaders |" in report
    # one batch size: a batch plot would have one bar per panel
    assert not (out / "throughput_by_batch_size.png").exists()
    assert "throughput_by_batch_size" not in report
    for png in ("throughput_by_workers", "throughput_by_format", "data_stall"):
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png}.png)" in report
    assert "## Decode only" in report and "| 8 clips of 24 | 0.2 min |" in report
    assert "Other systems' loaders ran at batch 8" in report
    assert "shown for comparison and never recommended" in report
    assert "## Shard" in report and "leaves out the runs from the original audio" in report
    assert "| clips | 24 |" in report and "Peak memory" in report
    assert not (out / "work").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb))  # results.csv as TensorBoard scalars
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "loader/items_per_s/memmap/0_workers_batch_8_int16" in tags
    assert "decode/x_real_time/8_clips_of_24/gstreamer_pipe" in tags
    assert [p.name for p in tb.iterdir() if not p.name.startswith("events.")] == []


def test_bench_on_your_own_audio(tmp_path):
    src = tmp_path / "mine"
    for i in range(3):
        make_file(src / f"a{i}.flac", seconds=1.5)
    out = tmp_path / "bench"
    args = ("--segment", "1s", "--batch-sizes", "2,4", "--cold", "--src", str(src))
    proc = run_prep("bench", "--quick", *args, "--out", str(out), check=True)
    assert "train from " in proc.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| your audio | 3 |" in report and "Page cache: cold:" in report.replace("\n", " ")
    assert "on-the-fly, flac (decode + resample, 1 s crops)" in report
    assert "1 s segments" in report and "Batch 4, 4 timed steps" in report
    assert (out / "throughput_by_batch_size.png").exists()  # two batch sizes: two bars each
    assert not (out / "corpus").exists()
    batch = _first_batch(_code_block(proc.stdout))
    assert batch[next(k for k in ("audio", "mel") if k in batch)].shape[-1] in (16000, 101)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--segment", "5"), "--segment '5' has no unit"),
        (("--segment", "2min"), "--segment '2min' is not a duration"),
        (("--segment", "90s"), "--segment '90s': the bench takes 0.1 s to 60 s"),
        (("--batch-sizes", "16,x"), "--batch-sizes '16,x': 'x' is not a whole number"),
        (("--batch-sizes", "0"), "'0' is not a whole number of 1 or more"),
        (("--batch-sizes", ""), "'' is not a whole number"),
    ],
)
def test_bad_bench_options_fail_in_one_line_before_any_work(tmp_path, args, message):
    out = tmp_path / "bench"
    proc = run_prep("bench", "--quick", "--out", str(out), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert message in proc.stderr
    assert not out.exists()


def test_bench_help_says_what_it_measures_and_how_long():
    text = run_prep("bench", "--help", check=True).stdout
    for words in ("convert", "shard", "loaders", "training steps", "--segment", "--batch-sizes"):
        assert words in text
    assert re.search(r"--quick about [\d.]+ minutes", text) and "default about" in text
    assert "Examples:" in text and "--batch-sizes 16,32,64" in text


@pytest.fixture(scope="module")
def bench_shards(sharded_set, converted_set, tmp_path_factory) -> Path:
    """The session's shards (links) plus the formats only the bench adds, made as
    ``sharded_set`` is (2 s items, 3 per shard)."""
    out = tmp_path_factory.mktemp("bench-shards")
    formats = ("tensordict", "lhotse_shar", *(["hf"] if "hf" in writer_names() else []))
    options = ShardOptions(formats=formats, segment=32000, shard_size=3)
    assert shard(converted_set / "conv", out, options).failed == 0
    for folder in sharded_set.iterdir():
        if folder.is_dir():
            (out / folder.name).symlink_to(folder)
    return out


def test_every_setting_the_bench_can_recommend_has_a_line_that_runs(
    bench_shards, converted_set, tmp_path
):
    """The code line of every loader the sweep can measure (so recommend) builds that
    loader, from the paths given, and it returns what the recommendation says: our
    loaders at every setting of their plan, tensordict included, and the DALI pipelines at
    each of theirs."""
    sources = dataset_builders(bench_shards, converted_set / "src", 2.0)
    assert "on-the-fly, mixed: 4 mp3, 1 flac (decode + resample, 2 s crops)" in sources
    assert sources["tensordict"].dtypes == ("int16",)
    tried = 0
    for name, source in sources.items():
        for dtype in source.dtypes:
            iterable = isinstance(source(dtype), IterableDataset)
            for workers, batch, threads, shared in loader_plan([0, 1], [3], 2, iterable):
                row = LoaderRow(name, dtype, workers, batch, 1.0, 1.0, 1, threads, shared)
                code = loader_code(row, source)
                assert code.startswith("from loaders import ") and "open_dataset(" in code
                batch_ = _first_batch(code)
                if name == MEL_NAME:
                    assert source.returns == "precomputed log-mel" and batch_["mel"].ndim == 3
                else:  # audio only, even from formats that also hold mel
                    assert str(batch_["audio"].dtype) == f"torch.{dtype}" and "mel" not in batch_
                assert len(batch_["key"]) == 3
                tried += 1
    assert tried >= 35
    pipelines = other_loaders(bench_shards, tmp_path / "cache", [0, 2])
    recommendable = {n: p for n, p in pipelines.items() if p.code_line is not None}
    assert set(recommendable) == {
        "memmap via DALI",
        "segments via DALI",
        "webdataset via DALI",
        "memmap via DALI, mel in the pipeline",
    }
    for name, pipeline in recommendable.items():
        rows = pipeline.rows(3, 1)
        assert [(r.workers, r.parallelism) for r in rows] == [
            (1, "DALI, 1 thread"),
            (2, "DALI, 2 threads"),
        ]
        for row in rows:
            code = pipeline.code(row)
            assert code.startswith("from loaders import dali_loader\nloader = dali_loader(")
            assert f"num_threads={row.workers})" in code or f"num_threads={row.workers}," in code
            batch_ = _first_batch(code)
            assert len(batch_["key"]) == 3 and batch_["audio"].dtype == torch.int16
            assert ("mel" in batch_) == (pipeline.returns != "audio"), name


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("name", [LHOTSE_NAME, DATASETS_NAME])
def test_other_ecosystems_read_every_item_once_per_epoch(bench_shards, tmp_path, name, workers):
    """The ecosystems' rows with workers read what they read without: every item of the
    folder once an epoch (Lhotse's workers each take shards of their own), two epochs."""
    if name == DATASETS_NAME and "hf" not in writer_names():
        pytest.skip("the hf format is not registered")
    folder = bench_shards / {LHOTSE_NAME: "lhotse_shar", DATASETS_NAME: "hf"}[name]
    manifest = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    expected = sorted(json.loads(line)["key"] for line in manifest)
    pipeline = other_loaders(bench_shards, tmp_path / "cache", [0, workers])[name]
    assert {r.workers for r in pipeline.rows(4, 1)} == {0, workers}
    loader = pipeline.loader(4, workers)
    for _ in range(2):
        keys, lengths = [], []
        for batch in loader:
            keys += list(batch["key"])
            lengths += batch["lengths"].tolist()
            assert batch["audio"].dtype == torch.float32 and len(batch["key"]) <= 4
        assert sorted(keys) == expected
        assert all(n > 0 for n in lengths)


def test_other_ecosystems_are_shown_never_recommended(bench_shards, tmp_path):
    """A faster Lhotse row is in the table, not the recommendation; a faster DALI row is
    recommended with its own code line."""
    pipelines = other_loaders(bench_shards, tmp_path / "cache", [0, 2])
    sources = {"memmap": Source(bench_shards / "memmap"), **pipelines}
    rows = [
        LoaderRow("memmap", "int16", 0, 8, 1000.0, 1.0, 1),
        *pipelines[LHOTSE_NAME].rows(8, 1),
        *pipelines["segments via DALI"].rows(8, 1),
    ]
    for row, speed in zip(rows[1:], [9000.0, 9500.0, 1500.0, 2000.0], strict=True):
        row.items_per_second = speed
    words, code = recommendation(rows, 2, sources, bold=False)
    assert "train from segments via DALI with DALI, 2 threads, batch size 8" in words
    assert code == pipelines["segments via DALI"].code(rows[4]) and "lhotse" not in words
    rows[3].items_per_second = rows[4].items_per_second = 500.0
    words, code = recommendation(rows, 2, sources, bold=False)
    assert "train from memmap with 0 workers" in words and "open_dataset(" in code


def _absent_system():
    return importlib.import_module("audioprep_bench_no_such_system")


def _broken(_opened, _batch_size, _setting):
    raise RuntimeError("pipeline refused the folder\nsecond line")


def test_a_system_missing_or_failing_leaves_its_row_out_with_a_note(sharded_set):
    """Never a crash: the row is left out, the note names it and why, the rest measured."""
    pipelines = {
        "absent": Pipeline("absent", 14, _absent_system, _broken),
        "broken": Pipeline("broken", 14, lambda: None, _broken),
    }
    notes: list[str] = []
    sets = {"memmap": Source(sharded_set / "memmap", dtypes=("int16",))}
    rows = measure_loaders(sets, [0], [4], 2, max_seconds=0.05, pipelines=pipelines, notes=notes)
    assert {r.name for r in rows} == {"memmap"} and len(rows) == 2  # no workers, 2 threads
    assert notes == [
        "absent: left out, its system is not installed "
        "(No module named 'audioprep_bench_no_such_system')",
        "broken: left out, it failed (RuntimeError: pipeline refused the folder)",
    ]


def test_decode_only_without_gstreamer_leaves_its_row_out_with_a_note(
    converted_set, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gst-launch-1.0; ffmpeg from imageio-ffmpeg
    notes: list[str] = []
    clips = sorted((converted_set / "src").rglob("*.mp3"))
    rows = measure_decoders(decode_samples(clips, clips[-1:]), 1, notes)
    assert {r.decoder for r in rows} == {"prep's pick, in process", "ffmpeg pipe"}
    assert {r.sample for r in rows} == {"4 clips of 4", "one long file (utt3.mp3)"}
    assert all(r.speed > 0 for r in rows)
    assert len(notes) == 1 and notes[0].startswith(
        "decode only: no gstreamer pipe row, gst-launch-1.0 is not on PATH (install "
    )


def test_tensorboard_needs_a_folder_before_any_work(tmp_path):
    out = tmp_path / "bench"
    (tmp_path / "file").write_text("x")
    proc = run_prep("bench", "--quick", "--out", str(out), "--tensorboard", str(tmp_path / "file"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: --tensorboard ")
    assert "is a file, not a folder" in proc.stderr and not out.exists()


def _results(tmp_path: Path, steps: list[StepRow]) -> tuple[BenchOptions, BenchResults]:
    sources = {
        "memmap": Source(tmp_path / "shards" / "memmap"),
        "on-the-fly, mp3 (decode + resample, 5 s crops)": Source(
            tmp_path / "clips", (("crop_seconds", 5.0),), dtypes=("float32",)
        ),
    }
    loader = [
        LoaderRow(name, "float32", workers, 32, speed * (1 + workers), speed, 2, shared=workers > 0)
        for name, speed in zip(sources, (20000.0, 200.0), strict=True)
        for workers in (0, 2)
    ]
    results = BenchResults(
        convert=[ConvertRow("clips", 300, 1600.0, 800.0, 300.0, 2000.0, 2)],
        memory=[MemoryRow("prep convert -j 1 (blocks)", 7200.0, 47.0)],
        shard=[ShardRow("memmap", 3.0, 10**8, 10**8)],
        loader=loader,
        ceiling=100000.0,
        steps=steps,
        device="cpu",
        sources=sources,
        phases=[Phase("loaders", 200.0, 300.0)],
    )
    return BenchOptions(out=tmp_path), results


def test_a_step_no_slower_than_its_ideal_is_noise_not_a_zero_stall(tmp_path):
    """Nor does a small stall round to a bare 0%: in the table or in results.csv."""
    steps = [
        StepRow("ae", "fast", 10.0, 9.5),
        StepRow("ae", "slow", 10.0, 20.0),
        StepRow("ae", "slight", 10.0, 10.03),
        StepRow("ae", "tiny", 10.0, 10.001),
    ]
    assert steps[0].stall is None and steps[1].stall == pytest.approx(0.5)
    table = step_table(steps)
    assert "| fast | 10.0 ms | 9.5 ms | within noise (ideal >= actual) |" in table
    assert "| slow | 10.0 ms | 20.0 ms | 50% |" in table
    assert "| slight | 10.0 ms | 10.0 ms | 0.3% |" in table
    assert "| tiny | 10.0 ms | 10.0 ms | under 0.1% |" in table
    options, results = _results(tmp_path, steps)
    write_results(tmp_path, results)
    with open(tmp_path / "results.csv", encoding="utf-8") as fh:
        stalls = [r["value"] for r in csv.DictReader(fh) if r["metric"] == "stall_percent"]
    assert stalls == ["within noise", "50", "0.299", "0.01"]
    assert (tmp_path / "data_stall.png") in plot_all(tmp_path, results.loader, steps)


def test_the_default_report_bolds_the_recommendation_only(tmp_path):
    options, results = _results(tmp_path, [StepRow("ae", "memmap", 10.0, 12.0)])
    report = write_report(tmp_path, options, results).read_text(encoding="utf-8")
    bold = [line for line in report.splitlines() if "**" in line]
    assert bold and all(line.startswith("On this machine") for line in bold)
    assert QUICK_NOTE not in report and "not measured" not in report
    assert "| 2.67x |" in report  # the convert ratio, plain
    assert (
        'batch_loader(open_dataset("' + str(tmp_path / "shards" / "memmap") + '", '
        'dtype="float32"), batch_size=32, shuffle=True, num_workers=2, shared_slots=True, '
        "prefetch_factor=2, persistent_workers=True)" in report
    )
    assert "float32 audio" in report


def test_plots_leave_out_a_panel_of_one_bar_each(tmp_path):
    rows = [
        LoaderRow(name, "int16", workers, 8, 1000.0 * (1 + workers), 1.0, 1, shared=workers > 0)
        for name in ("memmap", "hdf5")
        for workers in (0, 2)
    ]
    paths = plot_all(tmp_path, rows, [])
    names = sorted(p.name for p in paths)
    assert names == ["throughput_by_format.png", "throughput_by_workers.png"]


def test_the_bench_shards_the_formats_its_rows_read_and_notes_what_it_leaves_out():
    hf = ("hf",) if "hf" in writer_names() else ()  # read by datasets once registered
    notes: list[str] = []
    assert bench_formats(notes) == (
        *("segments", "mel", "webdataset", "hdf5", "memmap", "tensordict", "lhotse_shar"),
        *hf,
    )
    assert notes == []
    assert "tensordict" not in bench_formats(notes, quick=True)
    assert notes == [f"tensordict: not in quick mode: {NOT_IN_QUICK['tensordict']}"]


def test_the_bench_imports_other_systems_only_when_it_measures_them():
    optional = ("nvidia", "lhotse", "datasets", "tensordict", "lightning", "tensorboard")
    assert modules_loaded_by("import prep.bench.run", optional) == []
