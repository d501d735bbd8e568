"""The errors decoders raise, each one readable line, and the checks that raise them."""

from __future__ import annotations

import math

import numpy as np


class DecodeError(Exception):
    """A file that cannot be decoded completely; the message is one readable line."""


class CannotOpenError(DecodeError):
    """One decoder refuses the file's format: ``--decoder auto`` tries the next one."""


def one_line(exc: BaseException) -> str:
    """An exception from inside a decoding library as one line: its type and message."""
    text = " ".join(str(exc).split()).rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def all_finite(block: np.ndarray) -> bool:
    """Whether a float block holds no NaN or infinity: one sum (NaN and inf survive it),
    and an exact check only when the sum is not finite."""
    return math.isfinite(float(block.sum())) or bool(np.isfinite(block).all())


def not_finite(block: np.ndarray, decoded: int, sample_rate: int) -> DecodeError:
    """The error for a block that failed :func:`all_finite`, at its first bad sample."""
    bad = np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
    seconds = (decoded + int(bad[0])) / sample_rate
    return DecodeError(f"NaN or infinite samples (at {seconds:.2f} s): a broken float file")
