"""prep bench --quick: every output exists and is well-formed (not the speed)."""

from __future__ import annotations

import csv

import pytest
from helpers import make_file, run_prep

pytestmark = pytest.mark.bench


def test_quick_bench_writes_results_and_report(tmp_path):
    out = tmp_path / "bench"
    proc = run_prep("bench", "--quick", "--out", str(out), "-q", check=True)
    assert f"report: {out / 'report.md'}" in proc.stdout
    assert "train from **" in proc.stdout and "| format | best samples/s |" in proc.stdout
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
    memory = {r["method"]: float(r["value"]) for r in rows if r["step"] == "memory"}
    assert set(memory) == {
        "prep convert -j 1 (blocks)",
        "ffmpeg -ac 1 -ar 16000",
        "soundfile.read, whole file",
    }
    shard_methods = {r["method"] for r in rows if r["step"] == "shard"}
    assert {"segments", "mel", "webdataset", "hdf5", "memmap"} <= shard_methods
    assert "4 audio formats, one call, from original audio" in shard_methods
    assert "4 audio formats, one call each, from converted WAV" in shard_methods
    loader_sets = {r["set"] for r in rows if r["step"] == "loader"}
    assert {"memmap", "hdf5", "webdataset", "segments", "page-cache ceiling"} <= loader_sets
    assert any(s.startswith("on-the-fly") for s in loader_sets)
    methods = {r["method"] for r in rows if r["step"] == "loader" and r["set"] == "memmap"}
    assert {
        "0 workers, batch 8, int16",
        "2 workers, batch 8, float32",
        "2 threads, batch 8, int16",
    } <= methods
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Recommendation" in report and "train from **" in report
    assert "Page cache: warm:" in report
    assert "## Loaders" in report and "| 2 threads |" in report
    steps = [r for r in rows if r["step"] == "step" and r["metric"] == "stall_percent"]
    assert {r["set"] for r in steps} == {"linear autoencoder", "conv classifier on log-mel"}
    assert len(steps) >= 7 and all(0.0 <= float(r["value"]) <= 100.0 for r in steps)
    assert "## Training steps" in report and "| data stall |" in report
    for png in (
        "throughput_by_workers",
        "throughput_by_batch_size",
        "throughput_by_format",
        "data_stall",
    ):
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png}.png)" in report
    assert "## Shard" in report and "| 4 audio formats, one call, from original audio |" in report
    assert "| clips | 24 |" in report and "Peak memory" in report
    assert not (out / "work").exists()


def test_bench_on_your_own_audio(tmp_path):
    src = tmp_path / "mine"
    for i in range(3):
        make_file(src / f"a{i}.flac", seconds=1.0)
    out = tmp_path / "bench"
    proc = run_prep("bench", "--quick", "--cold", "--src", str(src), "--out", str(out), check=True)
    assert "train from **" in proc.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| your audio | 3 |" in report and "Page cache: cold:" in report
    assert not (out / "corpus").exists()
