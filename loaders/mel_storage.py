"""How log-mel (or Kaldi fbank) is stored (float32, float16, or uint8 with its range), and
how many frames an item has, without torch.

``prep`` writes with :func:`to_storage`; the loaders read back with :func:`from_storage`.
"""

from __future__ import annotations

import numpy as np

MEL_DTYPES = ("float32", "float16", "uint8")
FEATURES = ("mel", "fbank")
"""What the ``mel`` folder (and the mel of the other formats) holds: ``--features``."""

FBANK_WINDOWS = ("povey", "hamming", "hanning", "rectangular", "blackman")
FBANK_DEFAULTS = {"features": "fbank", "sample_rate": 16000, "n_mels": 80, "win_length": 400,
                  "hop_length": 160, "f_min": 20.0, "f_max": 0.0, "dither": 0.0,
                  "preemphasis": 0.97, "window": "povey", "snip_edges": True}  # fmt: skip
"""Kaldi's ``compute-fbank-feats`` defaults (25 ms / 10 ms, povey window, 20 Hz up to
Nyquist: ``f_max`` 0, or below 0 an offset from it), with 80 bins and no dither."""


def feature_frames(config: dict, num_samples: int) -> int:
    """Frames of an item of ``num_samples`` under a format.json ``mel`` config: torch's
    centred STFT for log-mel, Kaldi's framing for fbank (``"features": "fbank"``)."""
    hop = int(config["hop_length"])
    if config.get("features", "mel") != "fbank":
        return num_samples // hop + 1
    if not config.get("snip_edges", True):
        return (num_samples + hop // 2) // hop
    win = int(config["win_length"])
    return 0 if num_samples < win else 1 + (num_samples - win) // hop


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
