"""Every decoder, by the name ``--decoder`` and the manifests use: one line per backend.

``auto`` is the composite of the registered backends, in registration order (PyAV moves
first for the Ogg Vorbis and Opus it prefers). A plug-in calls :func:`register_decoder`
with its :class:`~loaders.audio.base.Decoder` class; worker processes forked afterwards
inherit it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from loaders.audio.base import AudioInput, AudioReader, Decoder
from loaders.audio.composite import CompositeDecoder, open_first
from loaders.audio.ffmpeg_backend import FfmpegDecoder
from loaders.audio.gstreamer_backend import GstDecoder
from loaders.audio.pyav_backend import PyAVDecoder
from loaders.audio.sniff import sniff
from loaders.audio.soundfile_backend import SoundfileDecoder


class AutoDecoder(CompositeDecoder):
    """The fastest backend for the codec first, then the others for what it refuses or
    finds no audio in (a 32-bit FLAC, a WAV whose header says 0 bytes)."""

    name = "auto"

    @classmethod
    def members(cls) -> tuple[type[Decoder], ...]:
        return tuple(DECODERS[name] for name in AUTO_MEMBERS)


DECODERS: dict[str, type[Decoder]] = {AutoDecoder.name: AutoDecoder}
"""Name -> backend class, in the order ``--help`` lists them."""
AUTO_MEMBERS: list[str] = []
"""What ``auto`` tries, in order (before preferences move some first)."""


def register_decoder(decoder: type[Decoder], *, auto: bool = True) -> type[Decoder]:
    """Make ``decoder`` a ``--decoder`` choice and, with ``auto``, ``auto``'s last resort."""
    if decoder.name in DECODERS and DECODERS[decoder.name] is not decoder:
        raise ValueError(f"a decoder named {decoder.name!r} is already registered")
    DECODERS[decoder.name] = decoder
    if auto and decoder.name not in AUTO_MEMBERS:
        AUTO_MEMBERS.append(decoder.name)
    return decoder


register_decoder(SoundfileDecoder)
register_decoder(FfmpegDecoder)
register_decoder(PyAVDecoder)
register_decoder(GstDecoder, auto=False)


def decoder_named(name: str) -> type[Decoder]:
    try:
        return DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown decoder {name!r}") from None


@contextlib.contextmanager
def open_audio(source: AudioInput, decoder: str = "auto") -> Iterator[AudioReader]:
    """Open ``source`` for block decoding with ``decoder`` (``auto``: the fastest
    in-process backend for its codec, then the others).

    ``source`` may also be the bytes of a whole file (an object fetched from storage): it
    is decoded from memory by every backend, never through a temporary file. Only regular
    files are opened; anything else fails with :class:`DecodeError`.
    """
    chosen = decoder_named(decoder)
    sniffed = sniff(source)
    reader = open_first(source, sniffed, chosen.candidates(sniffed))
    try:
        yield reader
    finally:
        reader.close()
