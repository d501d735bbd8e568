"""Shard cost: each format from the converted set, and the four audio formats in one call
against one call per format. Each run is a fresh ``prep shard`` process, as a user would
run it; the loader phase reads the folders these runs wrote."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from prep.bench.convert_bench import prep_command
from prep.writers import writer_names

COMPARED_FORMATS = ("segments", "webdataset", "hdf5", "memmap")
"""The audio formats written in one call against one call each: the same bytes either way."""
LOADER_FORMATS = ("tensordict", "lhotse_shar", "hf")
"""Formats sharded for the loader rows only (one timed run each, not in the comparison);
those not registered (``hf`` before its writer lands) are left out."""


SHARD_ITEMS = 128
"""``--shard-size`` of every run: a few shards even from the small demo corpus, so each
worker of a shard-splitting loader (webdataset, Lhotse's Shar recipe) has shards of its
own, as it would on a real corpus."""

ALL_FORMATS = ("segments", "mel", "webdataset", "hdf5", "memmap", *LOADER_FORMATS)
NEEDS = {"tensordict": "tensordict", "hf": "pyarrow"}
"""The module a format's writer imports: without it, the format is left out, noted."""
NOT_IN_QUICK = {
    "tensordict": "importing tensordict takes 5-10 s, in the shard run and again in the "
    "loader's, more than a smoke test's share"
}


def bench_formats(notes: list[str] | None = None, quick: bool = False) -> tuple[str, ...]:
    """Every format the bench shards, each by its own ``prep shard`` run: the compared
    audio formats, mel, and the registered formats other systems' loaders read, where
    their writer's system is installed (else a line in ``notes``)."""
    formats = []
    for name in (n for n in ALL_FORMATS if n in writer_names()):
        module = NEEDS.get(name)
        reason = ""
        if quick and name in NOT_IN_QUICK:
            reason = f"not in quick mode: {NOT_IN_QUICK[name]}"
        elif module and importlib.util.find_spec(module) is None:
            reason = f"not sharded or read: {module} is not installed"
        if not reason:
            formats.append(name)
        elif notes is not None:
            notes.append(f"{name}: {reason}")
    return tuple(formats)


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
        "--shard-size",
        str(SHARD_ITEMS),
        "-j",
        str(jobs),
    )


def _run_shard(src: Path, out: Path, formats: tuple[str, ...], segment: str, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        _shard_command(src, out, formats, segment, jobs), check=True, capture_output=True
    )
    return time.perf_counter() - started


def _together(label: str, src: Path, work: Path, jobs: int, segment: str, wav_bytes: int):
    """The audio formats (the same bytes either way) written by one call."""
    seconds = _run_shard(src, work / "together", COMPARED_FORMATS, segment, jobs)
    disk = folder_bytes(work / "together")
    shutil.rmtree(work / "together", ignore_errors=True)
    return ShardRow(
        f"{len(COMPARED_FORMATS)} audio formats, one call, from {label}", seconds, disk, wav_bytes
    )


def _separately(label: str, rows: list[ShardRow], wav_bytes: int) -> ShardRow:
    """The audio formats written by one call each: the sum of their own rows."""
    seconds = sum(r.seconds for r in rows)
    disk = sum(r.disk_bytes for r in rows)
    name = f"{len(COMPARED_FORMATS)} audio formats, one call each, from {label}"
    return ShardRow(name, seconds, disk, wav_bytes)


def _each_format(
    src: Path, work: Path, formats: tuple[str, ...], jobs: int, segment: str, wav_bytes: int
) -> list[ShardRow]:
    """One ``prep shard`` call per format; each format's folder is left in ``work``."""
    rows = []
    for name in formats:
        seconds = _run_shard(src, work / name, (name,), segment, jobs)
        rows.append(ShardRow(name, seconds, folder_bytes(work / name / name), wav_bytes))
    return rows


def measure_shard(
    converted: Path,
    original: Path,
    work: Path,
    jobs: int,
    segment: str = "5s",
    keep: Path | None = None,
    from_original: bool = True,
    formats: tuple[str, ...] | None = None,
) -> list[ShardRow]:
    """One row per format from the converted set, then the audio formats in one call
    against one call each, from the converted set and from the original files.

    From the converted set, "one call each" is the sum of the format rows (the same
    runs); with ``keep``, those runs' format folders are moved there: the converted set
    in every format, each written alone (HDF5 and webdataset hold audio only). Without
    ``from_original`` (quick mode), the runs from the original files are left out."""
    wav_bytes = folder_bytes(converted) - sum(p.stat().st_size for p in converted.glob("*.jsonl"))
    formats = bench_formats() if formats is None else formats
    rows = _each_format(converted, work / "converted", formats, jobs, segment, wav_bytes)
    audio_rows = [r for r in rows if r.name in COMPARED_FORMATS]
    rows.append(_together("converted WAV", converted, work, jobs, segment, wav_bytes))
    rows.append(_separately("converted WAV", audio_rows, wav_bytes))
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for name in ALL_FORMATS:  # none left from an older run, to be read as this one's
            shutil.rmtree(keep / name, ignore_errors=True)
        for name in formats:
            (work / "converted" / name / name).rename(keep / name)
    shutil.rmtree(work / "converted", ignore_errors=True)
    if not from_original:
        return rows
    each = _each_format(original, work / "original", COMPARED_FORMATS, jobs, segment, 0)
    shutil.rmtree(work / "original", ignore_errors=True)
    rows.append(_together("original audio", original, work, jobs, segment, wav_bytes))
    rows.append(_separately("original audio", each, wav_bytes))
    return rows


def shard_table(rows: list[ShardRow]) -> str:
    lines = ["| format | time | disk | disk / 16 kHz WAV set |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.seconds:.1f} s | {r.disk_bytes / 1e6:.0f} MB | {r.disk_ratio:.2f}x |"
        )
    return "\n".join(lines)
