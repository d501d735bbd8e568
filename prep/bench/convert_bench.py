"""Convert throughput: ``prep convert`` against one ffmpeg process per file, same parallelism.

Both sides run as the user would run them (a fresh ``prep`` process; ``ffmpeg`` per file
from a thread pool of ``jobs``), alternated within one run so machine noise hits both.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loaders.audio.ffmpeg_backend import ffmpeg_executable
from loaders.audio.quiet import quiet_native_stderr
from loaders.audio.registry import open_audio
from prep.bench.cache import prepare
from prep.sources import discover


@dataclass
class ConvertRow:
    """One measured set: throughput of each method in audio-seconds per wall-second."""

    name: str
    files: int
    audio_seconds: float
    prep_speed: float
    ffmpeg_speed: float
    decode_only_speed: float
    repeats: int

    @property
    def ratio(self) -> float:
        return self.prep_speed / self.ffmpeg_speed if self.ffmpeg_speed else float("nan")


@dataclass
class MemoryRow:
    name: str
    audio_seconds: float
    peak_rss_mb: float


def audio_seconds(paths: list[Path]) -> float:
    total = 0.0
    with quiet_native_stderr():
        for path in paths:
            with open_audio(path) as reader:
                total += reader.info.duration or 0.0
    return total


def prep_command(*args: str) -> list[str]:
    """The ``prep`` command line, run by this interpreter, quiet."""
    return [sys.executable, "-m", "prep.cli", *args, "-q"]


def run_prep_convert(src: Path, out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    command = prep_command("convert", str(src), str(out), "-j", str(jobs))
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def run_ffmpeg_per_file(paths: list[Path], root: Path, out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    exe = ffmpeg_executable()

    def one(path: Path) -> None:
        target = out / path.relative_to(root).with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [exe, "-nostdin", "-v", "error", "-y", "-i", str(path), "-ac", "1", "-ar", "16000"]
            + ["-sample_fmt", "s16", str(target)],
            check=True,
            capture_output=True,  # its warnings on a user's odd files stay off the terminal
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - started


DECODE_ONLY_SECONDS = 120.0
"""Audio decoded for the decode-only ceiling: a rate per audio-second, the same on a few
minutes of a set as on all of it."""


def decode_only_speed(paths: list[Path], enough: float = DECODE_ONLY_SECONDS) -> float:
    """The ceiling on one core: decoding alone (the decoder prep picks per codec), no
    mixdown, resampling or writing, of about ``enough`` seconds of files spread over the
    set (every n-th file, so a mixed set stays mixed)."""
    step = max(1, int(audio_seconds(paths) // enough))
    paths = paths[::step]
    seconds = audio_seconds(paths)
    started = time.process_time()
    with quiet_native_stderr():
        for path in paths:
            with open_audio(path) as reader:
                for _ in reader.blocks():
                    pass
    return seconds / max(time.process_time() - started, 1e-9)


def measure_set(
    name: str, root: Path, work: Path, jobs: int, repeats: int, cold: bool = False
) -> ConvertRow:
    paths = [s.path for s in discover(root)]
    seconds = audio_seconds(paths)
    prep_times, ffmpeg_times = [], []
    for _ in range(repeats):
        prepare(cold, root)
        prep_times.append(run_prep_convert(root, work / "prep", jobs))
        prepare(cold, root)
        ffmpeg_times.append(run_ffmpeg_per_file(paths, root, work / "ffmpeg", jobs))
    shutil.rmtree(work, ignore_errors=True)
    return ConvertRow(
        name=name,
        files=len(paths),
        audio_seconds=seconds,
        prep_speed=seconds / statistics.median(prep_times),
        ffmpeg_speed=seconds / statistics.median(ffmpeg_times),
        decode_only_speed=decode_only_speed(paths),
        repeats=repeats,
    )


def _peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of ``command``, measured by a fresh wrapper process."""
    wrapper = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def measure_memory(long_file: Path, work: Path, jobs: int = 1) -> list[MemoryRow]:
    """Peak RSS converting one long file: prep (one worker), ffmpeg, and a whole-file read."""
    seconds = audio_seconds([long_file])
    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    link = src / long_file.name
    if not link.exists():
        link.symlink_to(long_file.resolve())
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    commands = {
        "prep convert -j 1 (blocks)": [
            *(sys.executable, "-m", "prep.cli", "convert", str(src), str(out), "-j1")
        ],
        "ffmpeg -ac 1 -ar 16000": [
            *(ffmpeg_executable(), "-nostdin", "-v", "error", "-y", "-i", str(long_file)),
            *("-ac", "1", "-ar", "16000", "-sample_fmt", "s16", str(work / "ff.wav")),
        ],
        "soundfile.read, whole file": [
            *(sys.executable, "-c", "import soundfile, sys; soundfile.read(sys.argv[1])"),
            str(long_file),
        ],
    }
    # each process's own peak, so they may run side by side (one core each)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        peaks = list(pool.map(_peak_rss_mb, commands.values()))
    rows = [MemoryRow(name, seconds, peak) for name, peak in zip(commands, peaks, strict=True)]
    shutil.rmtree(work, ignore_errors=True)
    return rows
