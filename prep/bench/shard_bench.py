"""Shard cost: each format from the converted set, and all formats in one call against one
call per format. Each run is a fresh ``prep shard`` process, as a user would run it."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from prep.bench.convert_bench import prep_command
from prep.writers import get_writer, writer_names

FORMATS = writer_names()  # every registered format


@dataclass
class ShardRow:
    name: str
    seconds: float
    disk_bytes: int
    wav_bytes: int

    @property
    def disk_ratio(self) -> float:
        return self.disk_bytes / self.wav_bytes if self.wav_bytes else float("nan")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ensure_converted(corpus: Path, converted: Path, jobs: int) -> Path:
    """The demo corpus converted once (a rerun skips what is done)."""
    command = prep_command("convert", str(corpus), str(converted), "-j", str(jobs))
    subprocess.run(command, check=True, capture_output=True)
    return converted


def _shard_command(src: Path, out: Path, formats: tuple[str, ...], segment: str, jobs: int):
    return prep_command(
        "shard",
        str(src),
        str(out),
        "--segment",
        segment,
        "--format",
        ",".join(formats),
        "-j",
        str(jobs),
    )


def ensure_shards(converted: Path, out: Path, jobs: int, segment: str = "5s") -> Path:
    """The converted set in every format, kept for the loader benchmark (reruns skip it)."""
    command = _shard_command(converted, out, FORMATS, segment, jobs)
    subprocess.run(command, check=True, capture_output=True)
    return out


def _run_shard(src: Path, out: Path, formats: tuple[str, ...], segment: str, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        _shard_command(src, out, formats, segment, jobs), check=True, capture_output=True
    )
    return time.perf_counter() - started


AUDIO_FORMATS = tuple(n for n in FORMATS if not get_writer(n).computes_mel)  # same bytes


def _together_vs_separately(
    label: str, src: Path, work: Path, jobs: int, segment: str, wav_bytes: int
) -> list[ShardRow]:
    """The audio formats (same bytes either way) in one call, then one call each."""
    together = _run_shard(src, work / "together", AUDIO_FORMATS, segment, jobs)
    together_bytes = folder_bytes(work / "together")
    separately, separate_bytes = 0.0, 0
    for name in AUDIO_FORMATS:
        separately += _run_shard(src, work / name, (name,), segment, jobs)
        separate_bytes += folder_bytes(work / name / name)
        shutil.rmtree(work / name, ignore_errors=True)
    shutil.rmtree(work / "together", ignore_errors=True)
    audio = f"{len(AUDIO_FORMATS)} audio formats"
    return [
        ShardRow(f"{audio}, one call, from {label}", together, together_bytes, wav_bytes),
        ShardRow(f"{audio}, one call each, from {label}", separately, separate_bytes, wav_bytes),
    ]


def measure_shard(
    converted: Path, original: Path, work: Path, jobs: int, segment: str = "5s"
) -> list[ShardRow]:
    """One row per format from the converted set, then the audio formats in one call
    against one call each, from the converted set and from the original files."""
    wav_bytes = folder_bytes(converted) - sum(p.stat().st_size for p in converted.glob("*.jsonl"))
    rows = []
    for name in FORMATS:
        seconds = _run_shard(converted, work / name, (name,), segment, jobs)
        rows.append(ShardRow(name, seconds, folder_bytes(work / name / name), wav_bytes))
        shutil.rmtree(work / name, ignore_errors=True)
    rows += _together_vs_separately("converted WAV", converted, work, jobs, segment, wav_bytes)
    rows += _together_vs_separately("original audio", original, work, jobs, segment, wav_bytes)
    return rows


def shard_table(rows: list[ShardRow]) -> str:
    lines = ["| format | time | disk | disk / 16 kHz WAV set |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.seconds:.1f} s | {r.disk_bytes / 1e6:.0f} MB | {r.disk_ratio:.2f}x |"
        )
    return "\n".join(lines)
