"""Convert throughput: ``prep convert`` against one ffmpeg process per file, same parallelism.

Both sides run as the user would run them (a fresh ``prep`` process; ``ffmpeg`` per file
from a thread pool of ``jobs``), alternated within one run so machine noise hits both.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loaders.audio.ffmpeg_backend import ffmpeg_executable
from loaders.audio.gstreamer_backend import GST_LAUNCH, INSTALL_HINT
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


@dataclass
class DecodeRow:
    """One decoder on one sample: audio-seconds per CPU-second (this process and the
    decoder's own, so a piped decoder is charged for its process)."""

    sample: str
    decoder: str
    audio_seconds: float
    speed: float


DECODERS = {"prep's pick, in process": "auto", "ffmpeg pipe": "ffmpeg"}
GSTREAMER = "gstreamer pipe"
CLIP_SAMPLE = 8  # clips decoded by each decoder: a process each, so start-up shows


def _cpu_seconds() -> float:
    """CPU of this process and of the children it has waited for (a pipe's decoder), to
    the microsecond (``os.times`` counts in 10 ms ticks: too coarse for a clip)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode_cpu(paths: list[Path], decoder: str) -> float:
    """CPU seconds ``decoder`` takes to decode every block of ``paths``, one at a time."""
    started = _cpu_seconds()
    with quiet_native_stderr():
        for path in paths:
            with open_audio(path, decoder) as reader:
                for _ in reader.blocks():
                    pass
    return _cpu_seconds() - started


def measure_decoders(
    samples: dict[str, list[Path]], repeats: int, notes: list[str] | None = None
) -> list[DecodeRow]:
    """Decoding alone (no mixdown, resampling or writing) by prep's in-process pick, an
    ffmpeg pipe and, where ``gst-launch-1.0`` is on PATH, a GStreamer pipe: each sample
    (a few clips, one long file) by each decoder, alternated, median CPU."""
    decoders = dict(DECODERS)
    if shutil.which(GST_LAUNCH):
        decoders[GSTREAMER] = "gstreamer"
    elif notes is not None:
        notes.append(
            f"decode only: no {GSTREAMER} row, {GST_LAUNCH} is not on PATH ({INSTALL_HINT})"
        )
    first = next(iter(samples.values()))[:1]
    for decoder in decoders.values():  # untimed: each program's first start reads it from disk
        decode_cpu(first, decoder)
    rows = []
    for sample, paths in samples.items():
        seconds = audio_seconds(paths)
        cpu: dict[str, list[float]] = {name: [] for name in decoders}
        for _ in range(repeats):
            for name, decoder in decoders.items():
                cpu[name].append(decode_cpu(paths, decoder))
        for name, times in cpu.items():
            speed = seconds / max(statistics.median(times), 1e-9)
            rows.append(DecodeRow(sample, name, seconds, speed))
    return rows


def decode_samples(clips: list[Path], long_files: list[Path]) -> dict[str, list[Path]]:
    """A few clips spread over the set, and the shortest long file (its codec's rate
    without start-up)."""
    step = max(1, len(clips) // CLIP_SAMPLE)
    sample = clips[::step][:CLIP_SAMPLE]
    samples = {f"{len(sample)} clips of {len(clips)}": sample}
    if long_files:
        shortest = min(long_files, key=lambda p: audio_seconds([p]))
        samples[f"one long file ({shortest.name})"] = [shortest]
    return samples


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
