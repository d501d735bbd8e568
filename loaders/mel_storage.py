"""How log-mel is stored (float32, float16, or uint8 with its range), without torch.

``prep`` writes with :func:`to_storage`; the loaders read back with :func:`from_storage`.
"""

from __future__ import annotations

import numpy as np

MEL_DTYPES = ("float32", "float16", "uint8")


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
