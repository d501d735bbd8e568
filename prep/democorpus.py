"""A deterministic, speech-like demo corpus, so benchmarks and tests need no download.

Voiced stretches (harmonics of a gliding pitch), noise bursts (fricatives) and silences,
mixed to stereo with a little inter-channel difference. Files are written block by block:
libsndfile crashes when handed a minute of Ogg Vorbis in one call.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

WRITE_BLOCK_FRAMES = 8192
CORPUS_VERSION = 1
"""Bumped whenever the generator changes what it writes."""


def speech_like(seconds: float, sample_rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """float32 [frames, channels] in about [-0.8, 0.8]; the same seed gives the same audio."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    pos = 0
    while pos < n:
        kind = rng.choice(3, p=[0.6, 0.2, 0.2])
        length = min(n - pos, int(rng.uniform(0.08, 0.6) * sample_rate))
        t = np.arange(length) / sample_rate
        if kind == 0:  # voiced: a few harmonics of a gliding pitch
            f0 = rng.uniform(90, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            seg = sum(np.sin(k * phase) / k for k in range(1, 8) if k * f0.max() < sample_rate / 2)
            seg = seg * np.hanning(length) * rng.uniform(0.2, 0.5)
        elif kind == 1:  # fricative: a noise burst
            seg = rng.standard_normal(length) * np.hanning(length) * rng.uniform(0.02, 0.1)
        else:  # silence with a faint noise floor
            seg = rng.standard_normal(length) * 1e-3
        out[pos : pos + length] = seg
        pos += length
    if channels == 1:
        return out.astype(np.float32)[:, None]
    gains = 1.0 - 0.1 * np.arange(channels)
    return (out[:, None] * gains[None, :]).astype(np.float32)


def _sf_format(path: Path) -> dict:
    ext = path.suffix.lower()
    if ext == ".mp3":
        return {"format": "MP3"}
    if ext in (".ogg", ".oga"):
        return {"format": "OGG", "subtype": "VORBIS"}
    if ext == ".opus":
        return {"format": "OGG", "subtype": "OPUS"}
    return {}


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write [frames, channels] float32 in the format the extension names, block by block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = audio if audio.ndim == 2 else audio[:, None]
    with sf.SoundFile(path, "w", sample_rate, audio.shape[1], **_sf_format(path)) as out:
        for start in range(0, len(audio), WRITE_BLOCK_FRAMES):
            out.write(audio[start : start + WRITE_BLOCK_FRAMES])


def write_long_audio(
    path: Path, seconds: float, sample_rate: int, seed: int, channels: int = 1
) -> None:
    """A long file written as it is generated (one minute at a time), in bounded memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    minutes = [speech_like(60.0, sample_rate, seed + k, channels) for k in range(4)]
    remaining = int(round(seconds * sample_rate))
    with sf.SoundFile(path, "w", sample_rate, channels, **_sf_format(path)) as out:
        k = 0
        while remaining > 0:
            block = minutes[k % len(minutes)][:remaining]
            for start in range(0, len(block), WRITE_BLOCK_FRAMES):
                out.write(block[start : start + WRITE_BLOCK_FRAMES])
            remaining -= len(block)
            k += 1


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate; the defaults are the ``make bench`` corpus."""

    clips: int = 300
    clip_seconds: tuple[float, float] = (3.0, 8.0)
    long_per_codec: int = 2
    long_seconds: tuple[float, float] = (180.0, 720.0)
    sample_rate: int = 44100
    seed: int = 0


@dataclass(frozen=True)
class _FileSpec:
    path: Path
    seconds: float
    seed: int


def corpus_files(root: Path, spec: CorpusSpec) -> list[_FileSpec]:
    """The corpus's files: stereo clips (mp3, every 7th ogg, every 11th flac), long files."""
    rng = np.random.default_rng(spec.seed)
    files = []
    for i in range(spec.clips):
        ext = ".ogg" if i % 7 == 3 else ".flac" if i % 11 == 5 else ".mp3"
        seconds = float(rng.uniform(*spec.clip_seconds))
        files.append(
            _FileSpec(root / "clips" / f"spk{i % 10:02d}" / f"clip{i:04d}{ext}", seconds, i)
        )
    for codec in ("mp3", "ogg", "flac"):
        for j in range(spec.long_per_codec):
            seconds = float(rng.uniform(*spec.long_seconds))
            path = root / "long" / codec / f"long{j:02d}.{codec}"
            files.append(_FileSpec(path, seconds, 10_000 + 100 * j + len(files)))
    return files


def _write_one(file: _FileSpec, spec: CorpusSpec) -> None:
    if file.path.exists():
        return
    tmp = file.path.with_name(".tmp-" + file.path.name)  # same suffix: it picks the format
    seed = spec.seed * 100_003 + file.seed
    if file.seconds > 60:
        write_long_audio(tmp, file.seconds, spec.sample_rate, seed, channels=2)
    else:
        write_audio(tmp, speech_like(file.seconds, spec.sample_rate, seed, 2), spec.sample_rate)
    os.replace(tmp, file.path)


def make_corpus(
    root: str | os.PathLike[str],
    spec: CorpusSpec = CorpusSpec(),
    jobs: int = 0,
    also: Sequence[Callable[[], object]] = (),
) -> Path:
    """Write the corpus under ``root`` in parallel; files already there are kept.

    ``also``: more (picklable) jobs to run in the same pool, such as
    :func:`make_two_hour_file`, so no core waits while one long file is written. Jobs
    start longest first (``also`` before the corpus's files), which keeps every core
    busy to the end.
    """
    from prep.parallel import run_batches

    root = Path(root)
    if root.exists() and not _stamp_matches(root, spec):
        shutil.rmtree(root)  # made from another spec: regenerate rather than mix
    files = sorted(
        (f for f in corpus_files(root, spec) if not f.path.exists()),
        key=lambda f: -f.seconds * CODEC_COST.get(f.path.suffix, 1.0),
    )
    tasks: list[Callable[[], object] | _FileSpec] = [*also, *files]
    for _ in run_batches(_write_batch, [[task] for task in tasks], jobs, spec=spec):
        pass
    (root / "corpus.json").write_text(_stamp(spec))
    return root


def _stamp(spec: CorpusSpec) -> str:
    return json.dumps({"spec": asdict(spec), "version": CORPUS_VERSION}, sort_keys=True)


def _stamp_matches(root: Path, spec: CorpusSpec) -> bool:
    stamp = root / "corpus.json"
    return stamp.exists() and stamp.read_text() == _stamp(spec)


def corpus_ready(root: str | os.PathLike[str], spec: CorpusSpec = CorpusSpec()) -> bool:
    """Whether ``make_corpus`` would find everything already written."""
    root = Path(root)
    return _stamp_matches(root, spec) and all(f.path.exists() for f in corpus_files(root, spec))


CODEC_COST = {".mp3": 1.0, ".ogg": 1.3, ".flac": 0.2}
"""Encoding time per audio-second, roughly, relative to mp3: the order jobs start in."""


def _write_batch(tasks: list[Callable[[], object] | _FileSpec], spec: CorpusSpec) -> None:
    for task in tasks:
        if isinstance(task, _FileSpec):
            _write_one(task, spec)
        else:
            task()


def make_two_hour_file(path: Path, seconds: float = 7200.0, seed: int = 7) -> Path:
    """One long mono 22.05 kHz mp3 (the length of a field recording), for peak-memory checks."""
    if not path.exists():
        tmp = path.with_name(".tmp-" + path.name)
        write_long_audio(tmp, seconds, 22050, seed, channels=1)
        os.replace(tmp, path)
    return path
