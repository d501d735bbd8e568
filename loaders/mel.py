"""Log-mel features as a torch module: the same code makes precomputed and on-the-fly mel.

``LogMel(**fmt["mel"])`` rebuilds exactly the module that wrote a ``prep shard`` folder.
It runs on whatever device its input is on, takes float32 in [-1, 1] or raw int16 (the
fast path: int16 crosses the process boundary, the float conversion happens on the GPU).
No per-batch normalisation, so one item gives the same features alone or in a batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

LOG_SCALES = ("natural", "db")
MEL_DTYPES = ("float32", "float16", "uint8")
_FLOOR = 1e-10


class LogMel(torch.nn.Module):
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
        log: str = "natural",
    ) -> None:
        super().__init__()
        if log not in LOG_SCALES:
            raise ValueError(f"log must be one of {LOG_SCALES}, not {log!r}")
        self.config = {
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "f_min": f_min,
            "f_max": f_max,
            "log": log,
        }
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
            center=True,
        )

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.config["hop_length"] + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[T] or [B, T] audio to [n_mels, frames] or [B, n_mels, frames] log-mel."""
        if audio.dtype == torch.int16:
            audio = audio.to(torch.float32) / 32768.0
        power = self.mel(audio).clamp_min(_FLOOR)
        if self.config["log"] == "natural":
            return power.log()
        return 10.0 * power.log10()


def quantize_uint8(mel: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The "spectrogram as an image" route: uint8 over the item's own range, kept to undo it.

    The error this adds is at most (max - min) / 510 per bin.
    """
    lo, hi = float(mel.min()), float(mel.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.rint((mel - lo) * scale).astype(np.uint8), lo, hi


def dequantize_uint8(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (q.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(
        np.float32
    )


def to_storage(mel: np.ndarray, dtype: str) -> tuple[np.ndarray, dict]:
    """float32 mel to its stored dtype, with the fields needed to read it back."""
    if dtype == "float32":
        return mel.astype(np.float32, copy=False), {}
    if dtype == "float16":
        return mel.astype(np.float16), {}
    if dtype == "uint8":
        q, lo, hi = quantize_uint8(mel)
        return q, {"mel_min": lo, "mel_max": hi}
    raise ValueError(f"mel dtype must be one of {MEL_DTYPES}, not {dtype!r}")


def from_storage(stored: np.ndarray, fields: dict) -> np.ndarray:
    """Stored mel back to float32 (undoing uint8 quantisation with the item's range)."""
    if stored.dtype == np.uint8:
        return dequantize_uint8(stored, fields["mel_min"], fields["mel_max"])
    return stored.astype(np.float32, copy=False)
