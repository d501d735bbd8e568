"""Writing mono 16-bit PCM: WAV through the standard library, FLAC through libsndfile."""

from __future__ import annotations

import contextlib
import io
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf


@contextlib.contextmanager
def pcm16_writer(
    target: Path | BinaryIO, fmt: str, sample_rate: int
) -> Iterator[Callable[[np.ndarray], None]]:
    """A mono 16-bit writer taking int16 blocks, to a path or a binary file object.

    WAV goes through the standard library's ``wave`` (the same 44-byte header libsndfile
    writes, byte for byte): soundfile's ``close`` fsyncs every file, which is a tenth of
    the time on short clips, and renaming is what protects against a killed run.
    """
    if fmt == "WAV":
        with wave.open(target if not isinstance(target, Path) else str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            yield lambda block: out.writeframes(block.astype("<i2", copy=False).tobytes())
    else:
        with sf.SoundFile(target, "w", sample_rate, 1, "PCM_16", format=fmt) as out:
            yield out.write


def encode_pcm16(samples: np.ndarray, sample_rate: int, fmt: str = "WAV") -> bytes:
    """A whole mono int16 signal as the bytes of a WAV (or FLAC) file."""
    buffer = io.BytesIO()
    with pcm16_writer(buffer, fmt, sample_rate) as write:
        write(samples)
    return buffer.getvalue()
