"""A throwaway decoder plug-in, outside the package: headerless int16 (``.raw16``) whose
sample rate is in a sidecar file (``NAME.raw16.rate``). Registered by :func:`register`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from loaders.audio.base import BLOCK_FRAMES, AudioInfo, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError
from loaders.audio.registry import AUTO_MEMBERS, DECODERS, register_decoder
from loaders.int16 import INT16_SCALE


def _rate_file(path) -> str:
    return f"{os.fspath(path)}.rate"


class Raw16Reader(AudioReader):
    def __init__(self, path) -> None:
        self._samples = np.fromfile(path, dtype="<i2")
        with open(_rate_file(path)) as fh:
            rate = int(fh.read())
        self.info = AudioInfo(rate, 1, len(self._samples), "raw16", "toy", "toy 1").check()
        self.empty = not len(self._samples)

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        for start in range(0, len(self._samples), frames):
            block = self._samples[start : start + frames, None].astype(np.float32)
            yield block / np.float32(INT16_SCALE)

    def close(self) -> None:
        pass


class ToyDecoder(Decoder):
    name = "toy"

    @classmethod
    def can_open(cls, sniffed) -> bool:
        return sniffed.path is not None and os.path.exists(_rate_file(sniffed.path))

    prefers = can_open  # auto tries it first where it can open the file at all

    @classmethod
    def open(cls, source) -> Raw16Reader:
        if isinstance(source, bytes) or not os.path.exists(_rate_file(source)):
            raise CannotOpenError("toy needs a .rate file next to the audio")
        if os.path.getsize(source) % 2:
            raise CannotOpenError("toy reads whole int16 samples, and the size is odd")
        return Raw16Reader(source)


def register() -> None:
    register_decoder(ToyDecoder)


def unregister() -> None:
    DECODERS.pop(ToyDecoder.name, None)
    if ToyDecoder.name in AUTO_MEMBERS:
        AUTO_MEMBERS.remove(ToyDecoder.name)
