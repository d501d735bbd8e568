"""In-memory augmentation, seeded: noise from a bank preloaded into RAM (random SNR),
random gain, random circular time shift.

:class:`Augment` works per sample on the CPU (in DataLoader workers; its randomness comes
from the seed, the epoch and the item's key, so it does not depend on which worker runs
it) and per batch on any device (:meth:`Augment.batch`, one torch generator).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from loaders.audio.dsp import load_mono
from loaders.audio.errors import DecodeError
from loaders.audio.sniff import is_audio_name
from loaders.epoch import SharedEpoch


class NoiseBank:
    """Every noise file in a folder, decoded once to float32 at ``sample_rate``, in RAM."""

    def __init__(self, folder: str | Path, sample_rate: int = 16000) -> None:
        paths = sorted(p for p in Path(folder).rglob("*") if is_audio_name(p.name))
        self.clips: list[np.ndarray] = []
        for path in paths:
            try:
                clip = load_mono(path, sample_rate)
            except DecodeError:
                continue
            if len(clip) and np.any(clip):
                self.clips.append(clip)
        if not self.clips:
            raise ValueError(f"{folder}: no usable noise files")
        self.sample_rate = sample_rate

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.clips)

    def excerpt(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """``length`` samples of one noise clip from a random place (looped if short)."""
        clip = self.clips[int(rng.integers(len(self.clips)))]
        reps = -(-length // len(clip)) + 1
        start = int(rng.integers(len(clip)))
        return np.tile(clip, reps)[start : start + length]


def _power(x):
    return (x**2).mean(-1) if isinstance(x, torch.Tensor) else float(np.mean(np.square(x)))


class Augment(SharedEpoch):
    def __init__(
        self,
        noise: NoiseBank | None = None,
        snr_db: tuple[float, float] = (5.0, 20.0),
        gain_db: tuple[float, float] | None = (-6.0, 6.0),
        max_shift_seconds: float = 0.0,
        sample_rate: int = 16000,
        seed: int = 0,
    ) -> None:
        self.noise, self.snr_db, self.gain_db = noise, snr_db, gain_db
        self.max_shift = int(round(max_shift_seconds * sample_rate))
        self.seed, self.epoch = seed, 0

    def _rng(self, key: str) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, zlib.crc32(key.encode())))

    def __call__(self, sample: dict) -> dict:
        """One float32 sample on the CPU; returns a new sample with augmented ``audio``."""
        rng = self._rng(str(sample["key"]))
        audio = sample["audio"].numpy().astype(np.float32, copy=True)
        length = int(sample["length"]) or len(audio)
        real = audio[:length]
        if self.noise is not None and _power(real) > 0:
            snr = rng.uniform(*self.snr_db)
            noise = self.noise.excerpt(length, rng)
            scale = np.sqrt(_power(real) / (_power(noise) * 10 ** (snr / 10)))
            real += (scale * noise).astype(np.float32)
        if self.gain_db is not None:
            real *= np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
        if self.max_shift:
            audio[:length] = np.roll(real, int(rng.integers(-self.max_shift, self.max_shift + 1)))
        return {**sample, "audio": torch.from_numpy(audio)}

    def batch(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A float32 ``[B, T]`` batch on its own device, with one torch generator."""
        batch_size, length = audio.shape
        device = audio.device
        g = generator or torch.Generator(device=device).manual_seed(self.seed + self.epoch)
        out = audio.clone()
        if self.noise is not None:
            rng = np.random.default_rng(
                int(torch.randint(0, 2**31, (1,), generator=g, device=device))
            )
            noise = torch.from_numpy(
                np.stack([self.noise.excerpt(length, rng) for _ in range(batch_size)])
            )
            noise = noise.to(device)
            low, high = self.snr_db
            snr = low + (high - low) * torch.rand(batch_size, generator=g, device=device)
            scale = torch.sqrt(_power(out) / (_power(noise) * 10 ** (snr / 10)).clamp_min(1e-20))
            out += scale[:, None] * noise
        if self.gain_db is not None:
            low, high = self.gain_db
            gains = low + (high - low) * torch.rand(batch_size, generator=g, device=device)
            out *= (10 ** (gains / 20))[:, None]
        if self.max_shift:
            shifts = torch.randint(
                -self.max_shift, self.max_shift + 1, (batch_size,), generator=g, device=device
            )
            positions = (torch.arange(length, device=device)[None, :] - shifts[:, None]) % length
            out = torch.gather(out, 1, positions)
        return out
