"""The decoder interface: what a backend says about itself, and the reader it opens.

A :class:`Decoder` backend states its ``name``, whether it can open some content
(:meth:`Decoder.can_open`, from the sniffed first bytes), whether its readers can read
ranges (``range_reads``) and land on the exact sample there (``exact_seeks``), and opens
a file as an :class:`AudioReader`. Callers ask these capabilities, never which backend
they hold: a new backend is one module plus one line in :mod:`loaders.audio.registry`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from loaders.audio.errors import DecodeError

if TYPE_CHECKING:
    from loaders.audio.sniff import Sniffed

AudioInput = str | os.PathLike[str] | bytes
"""A file's path, or the bytes of a whole file."""

BLOCK_FRAMES = 1 << 16
"""Frames decoded per block: about 0.5 MB of stereo float32, so memory stays flat."""

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
"""Input rates outside this range are broken headers (a 1 Hz WAV makes 100 s of output
from 244 bytes), not audio."""
MAX_CHANNELS = 255
"""Opus's limit; more is a broken header (and 65,535 channels would need 17 GB a block)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a decoder announces about a file before decoding it."""

    sample_rate: int
    channels: int
    frames: int | None
    format: str
    decoder: str
    decoder_version: str
    exact_seeks: bool = False
    """Its reader's ``range_blocks`` land on the exact sample and the header states the
    length exactly, so the file can be decoded as independent ranges (:mod:`prep.parts`)."""

    @property
    def duration(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate

    def check(self) -> AudioInfo:
        """Refuse header values no audio has; return the info itself."""
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise DecodeError(
                f"a sample rate of {self.sample_rate} Hz in its header "
                f"(audio is {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise DecodeError(f"{self.channels} channels in its header (1-{MAX_CHANNELS})")
        return self


class AudioReader(ABC):
    """One opened file, decoded in ``[frames, channels]`` float32 blocks in [-1, 1]."""

    info: AudioInfo
    empty: bool
    """It opened but holds no audio for this decoder: ``auto`` asks the next one."""
    passed_over: tuple[str, ...] = ()
    """Why the decoders ``auto`` tried before this one did not take the file."""
    in_process: ClassVar[bool] = True
    """Decoding runs in this process, so a read-ahead thread overlaps it with the caller;
    False for a pipe from another process, which already runs alongside."""

    @abstractmethod
    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The whole file from the start; raises :class:`DecodeError` where it breaks."""

    def range_blocks(
        self, start: int, stop: int, frames: int = BLOCK_FRAMES
    ) -> Iterator[np.ndarray]:
        """Frames ``start`` to ``stop``, exactly; only where ``info.exact_seeks``."""
        raise DecodeError(f"{self.info.decoder} does not read ranges")

    @abstractmethod
    def close(self) -> None: ...


class Decoder(ABC):
    """A decoding backend: its name, what it can open, and its capabilities."""

    name: ClassVar[str]
    """How ``--decoder`` and the manifest's ``decoder`` field name it."""
    range_reads: ClassVar[bool] = False
    """Its readers have :meth:`AudioReader.range_blocks`."""
    exact_seeks: ClassVar[bool] = False
    """Its range reads can land on the exact sample (for the files whose
    :attr:`AudioInfo.exact_seeks` says so)."""

    @classmethod
    def can_open(cls, sniffed: Sniffed) -> bool:
        """Whether it may open content that starts like this; the built-in backends
        detect the format themselves, so they try anything."""
        return True

    @classmethod
    def unavailable(cls) -> str | None:
        """Why it cannot run on this machine (a program it needs is missing), checked
        before a run does any work; None when it can."""
        return None

    @classmethod
    def prefers(cls, sniffed: Sniffed) -> bool:
        """Whether ``auto`` should try it before the others for this content."""
        return False

    @classmethod
    def candidates(cls, sniffed: Sniffed) -> Sequence[type[Decoder]]:
        """The backends that try this content for this choice, in order: itself alone
        (a composite lists its members)."""
        return (cls,)

    @classmethod
    def range_decoder(cls) -> type[Decoder] | None:
        """The backend that reads exact ranges of files for this choice, or None."""
        return cls if cls.range_reads and cls.exact_seeks else None

    @classmethod
    @abstractmethod
    def open(cls, source: AudioInput) -> AudioReader:
        """Open ``source`` (a path, or a whole file's bytes), or raise
        :class:`CannotOpenError` when this backend does not read its format."""
