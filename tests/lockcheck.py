"""Is this environment the one requirements.lock describes?

A release of one package (torchaudio 2.11.1 over torch 2.11.0) can break an install whose own
code did not change. These checks run before any test, so a drifted or half-broken install
fails in one line that says what to do, not deep inside a shard test.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
FIX = (
    "run `make reinstall` (installs requirements.lock again), "
    "or `make lock` if pyproject.toml changed"
)


def locked_pins(lock: Path = LOCK) -> dict[str, Requirement]:
    """The lock's `name==version` lines that apply to this interpreter and platform."""
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            pins[canonicalize_name(req.name)] = req
    return pins


def lock_mismatches(lock: Path = LOCK) -> list[str]:
    """One `name installed X, locked Y` per locked package that is missing or another version."""
    wrong = []
    for name, req in sorted(locked_pins(lock).items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing, locked {req.specifier}")
            continue
        # `==2.11.0` admits the local build `2.11.0+cu130`, as pip and uv install it.
        if not req.specifier.contains(installed, prereleases=True):
            wrong.append(f"{name} {installed} installed, locked {req.specifier}")
    return wrong


def torchaudio_load_error() -> str | None:
    """None when torchaudio's compiled library loads beside this torch and computes a mel.

    Runs in a child interpreter: a failed load leaves torch half-initialised in the process
    that tried it.
    """
    code = (
        "import torch, torchaudio\n"
        "mel = torchaudio.transforms.MelSpectrogram(16000, n_mels=64)(torch.zeros(16000))\n"
        "assert mel.shape == (64, 81), mel.shape\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def torchcodec_load_error() -> str | None:
    """None when torchcodec (Hugging Face ``datasets`` decodes audio with it) finds FFmpeg's
    shared libraries; else one line saying what to install."""
    code = "from torchcodec.decoders import AudioDecoder\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return (
        "torchcodec cannot load FFmpeg's shared libraries (4 to 8): run `.ci/ffmpeg-libs` "
        "as root on Debian/Ubuntu, or install FFmpeg (apt-get install ffmpeg, conda install ffmpeg)"
    )


def environment_problem(lock: Path = LOCK) -> str | None:
    """One line naming what is wrong with this install, or None."""
    wrong = lock_mismatches(lock)
    if wrong:
        return f"installed packages differ from {lock.name}: {'; '.join(wrong)}: {FIX}"
    error = torchaudio_load_error()
    if error:
        return f"torchaudio does not load beside torch: {error}: {FIX}"
    return None
