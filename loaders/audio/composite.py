"""A decoder made of others: ``auto`` tries its capable members in order.

Those that prefer the content go first (PyAV for Ogg Vorbis and Opus), then the rest in
their registered order. A member that refuses the format (:class:`CannotOpenError`) or
decodes nothing from a file that is not empty hands the file to the next; any other error
is the file's. When every member fails, one :class:`DecodeError` names each one's reason.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from loaders.audio.base import AudioInput, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError, DecodeError
from loaders.audio.sniff import Sniffed, sniff


class CompositeDecoder(Decoder):
    """Tries :meth:`members` in order (see the module's docstring)."""

    @classmethod
    @abstractmethod
    def members(cls) -> Sequence[type[Decoder]]:
        """The backends it tries, in order, before preferences reorder them."""

    @classmethod
    def candidates(cls, sniffed: Sniffed) -> list[type[Decoder]]:
        """The members to try for this content: the preferring ones first."""
        members = list(cls.members())
        return [m for m in members if m.prefers(sniffed)] + [
            m for m in members if not m.prefers(sniffed)
        ]

    @classmethod
    def range_decoder(cls) -> type[Decoder] | None:
        return next((m for m in cls.members() if m.range_decoder() is not None), None)

    @classmethod
    def open(cls, source: AudioInput) -> AudioReader:
        sniffed = sniff(source)
        return open_first(source, sniffed, cls.candidates(sniffed))


def open_first(
    source: AudioInput, sniffed: Sniffed, decoders: Sequence[type[Decoder]]
) -> AudioReader:
    """The first of ``decoders`` that opens the file and finds audio in it.

    When none finds audio, the first that opened it stands (the file holds no audio).
    When none opens it, one :class:`DecodeError` names each one's reason.
    """
    refusals: list[str] = []
    empty: AudioReader | None = None
    for decoder in decoders:
        if not decoder.can_open(sniffed):
            refusals.append(f"{decoder.name} does not read this content")
            continue
        try:
            reader = decoder.open(source)
        except CannotOpenError as exc:
            refusals.append(str(exc))
            continue
        except BaseException:
            if empty is not None:
                empty.close()
            raise
        if not reader.empty:
            if empty is not None:
                empty.close()
            reader.passed_over = tuple(refusals)
            return reader
        refusals.append(f"{decoder.name} found no audio in it")
        if empty is None:
            empty = reader
        else:
            reader.close()
    if empty is not None:
        return empty
    if len(refusals) == 1:
        raise DecodeError(refusals[0])
    raise DecodeError(f"not decodable: {'; '.join(refusals)}")
