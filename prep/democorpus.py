"""A deterministic, speech-like demo corpus, so benchmarks and tests need no download.

Voiced stretches (harmonics of a gliding pitch under a formant-like envelope), noise
bursts (fricatives) and silences, mixed to stereo with a little inter-channel difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


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


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write with soundfile, the format picked from the extension (mp3, ogg, opus, flac, wav)."""
    ext = path.suffix.lower()
    kwargs: dict = {}
    if ext == ".mp3":
        kwargs = {"format": "MP3"}
    elif ext in (".ogg", ".oga"):
        kwargs = {"format": "OGG", "subtype": "VORBIS"}
    elif ext == ".opus":
        kwargs = {"format": "OGG", "subtype": "OPUS"}
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, **kwargs)


@dataclass(frozen=True)
class CorpusSpec:
    clips: int = 300
    long_files: int = 3
    clip_seconds: tuple[float, float] = (3.0, 8.0)
    long_seconds: tuple[float, float] = (180.0, 720.0)
    sample_rate: int = 44100
    seed: int = 0


def make_corpus(root: str | os.PathLike[str], spec: CorpusSpec = CorpusSpec()) -> list[Path]:
    """Write the corpus under ``root`` (mostly stereo mp3, every 7th ogg, every 11th flac).

    Files already present are kept, so a second call is cheap.
    """
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    paths = []
    for i in range(spec.clips):
        ext = ".ogg" if i % 7 == 3 else ".flac" if i % 11 == 5 else ".mp3"
        seconds = float(rng.uniform(*spec.clip_seconds))
        paths.append((root / "clips" / f"spk{i % 10:02d}" / f"clip{i:04d}{ext}", seconds, i))
    for j in range(spec.long_files):
        ext = (".mp3", ".ogg", ".flac")[j % 3]
        seconds = float(rng.uniform(*spec.long_seconds))
        paths.append((root / "long" / f"long{j:02d}{ext}", seconds, 10_000 + j))
    for path, seconds, seed in paths:
        if not path.exists():
            audio = speech_like(seconds, spec.sample_rate, spec.seed * 100_003 + seed, channels=2)
            tmp = path.with_name(".tmp-" + path.name)  # same suffix: it picks the format
            write_audio(tmp, audio, spec.sample_rate)
            os.replace(tmp, path)
    return [p for p, _, _ in paths]
