"""Shared test helpers (``from helpers import ...``): real audio files written with soundfile
and the real ffmpeg binary, and the real ``prep`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from loaders.audio.ffmpeg_backend import ffmpeg_executable
from prep.democorpus import speech_like, write_audio

REPO = Path(__file__).resolve().parents[1]

MEL = {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80,
       "f_min": 0.0, "f_max": 8000.0, "log": "natural"}  # fmt: skip
"""The mel settings of the session's sharded set (conftest ``sharded_set``)."""
CORE_FORMATS = ("segments", "mel", "webdataset", "hdf5", "memmap")
"""The formats the session's sharded set is written in: the first five, which the shared
tests cover together; every later format (tensordict, lhotse_shar, kaldi, hf,
nemo_tarred) has tests of its own."""


def sine(freq: float, seconds: float, sr: int, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def make_file(path: Path, seconds: float = 1.0, sr: int = 44100, channels: int = 2, **kw) -> Path:
    """A speech-like file in the format its extension names."""
    seed = zlib.crc32(path.name.encode())  # stable across processes, unlike hash()
    write_audio(path, speech_like(seconds, sr, seed=seed, channels=channels), sr)
    return path


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def run_prep(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run the real ``prep`` command line in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "prep.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"prep {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def modules_loaded_by(code: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` (each a module and everything under it) that a fresh
    interpreter has loaded after running ``code``: what an import drags in."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules for p in {packages!r} "
        "if m == p or m.startswith(p + '.'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read_int16(path: Path) -> tuple[np.ndarray, int]:
    with sf.SoundFile(path) as f:
        assert f.subtype == "PCM_16" and f.channels == 1
        return f.read(dtype="int16"), f.samplerate
