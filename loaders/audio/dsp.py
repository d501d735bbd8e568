"""After decoding: mixdown to mono, streaming soxr resampling, and float32 -> int16.

Works on the ``[frames, channels]`` float32 blocks any :class:`~loaders.audio.base.AudioReader`
yields, whichever backend decoded them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import soxr

from loaders.audio.base import BLOCK_FRAMES, AudioReader
from loaders.int16 import INT16_SCALE

ChannelMode = Literal["mix", "first"]
CHANNEL_MODES: tuple[str, ...] = ("mix", "first")
RESAMPLE_QUALITIES: tuple[str, ...] = ("LQ", "MQ", "HQ", "VHQ")


def mixdown(block: np.ndarray, channels: ChannelMode = "mix") -> np.ndarray:
    """[n, c] float32 to [n] float32: the channel average, or the first channel.

    Columns are summed one by one: ``block.mean(axis=1)`` costs as much as decoding.
    """
    if block.shape[1] == 1 or channels == "first":
        return np.ascontiguousarray(block[:, 0])
    mono = block[:, 0] + block[:, 1]
    for c in range(2, block.shape[1]):
        mono += block[:, c]
    mono *= np.float32(1.0 / block.shape[1])
    return mono


class MonoResampler:
    """Streaming soxr resampling of mono float32 blocks; identity when rates match."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last)


def resampler_version() -> str:
    return f"python-soxr {soxr.__version__}, libsoxr {soxr.__libsoxr_version__}"


def iter_mono(
    reader: AudioReader,
    sample_rate: int,
    channels: ChannelMode = "mix",
    quality: str = "HQ",
    block_frames: int = BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """Decode, mix down and resample ``reader`` block by block: mono float32 at ``sample_rate``."""
    blocks = reader.blocks(block_frames)
    return mono_stream(blocks, reader.info.sample_rate, sample_rate, channels, quality)


def mono_stream(
    blocks: Iterable[np.ndarray],
    in_rate: int,
    out_rate: int,
    channels: ChannelMode = "mix",
    quality: str = "HQ",
) -> Iterator[np.ndarray]:
    """Mix down and resample decoded ``[n, c]`` blocks as one stream: mono float32 at
    ``out_rate``, the resampler flushed at the end."""
    resampler = MonoResampler(in_rate, out_rate, quality)
    for block in blocks:
        out = resampler.process(mixdown(block, channels))
        if len(out):
            yield out
    tail = resampler.process(np.zeros(0, dtype=np.float32), last=True)
    if len(tail):
        yield tail


def to_int16(block: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] to int16, clipping out-of-range samples instead of wrapping."""
    scaled = np.multiply(block, INT16_SCALE, dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -INT16_SCALE, INT16_SCALE - 1, out=scaled)
    return scaled.astype(np.int16)


def concat(blocks: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(blocks)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def load_mono(
    path: str | os.PathLike[str],
    sample_rate: int,
    channels: ChannelMode = "mix",
    decoder: str = "auto",
    quality: str = "HQ",
) -> np.ndarray:
    """The whole file as mono float32 at ``sample_rate``, through the same path as ``prep``."""
    from loaders.audio.registry import open_audio

    with open_audio(path, decoder) as reader:
        return concat(iter_mono(reader, sample_rate, channels, quality))
