"""What a file is, before any decoder runs: by name for a folder walk, by content for
the decoders (never by extension).

:func:`sniff` turns the common OS-level failures (missing, unreadable, empty, not a
regular file) into one reason and returns the first bytes, which the decoders' ``can_open``
and ``prefers`` read. The checks that libraries skip (a WAV or Ogg stream cut short)
live here too, as they read the raw bytes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from loaders.audio.base import AudioInput
from loaders.audio.errors import DecodeError

AUDIO_EXTENSIONS: tuple[str, ...] = ("mp3", "ogg", "oga", "opus", "flac", "wav")
"""What a folder walk picks up, case-insensitively (decoding itself goes by content)."""


def is_audio_name(name: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a file name has one of the audio extensions (or one of ``extra``)."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return suffix in AUDIO_EXTENSIONS or suffix in {e.lower().lstrip(".") for e in extra}


HEAD_BYTES = 512

OGG_CODECS = {b"\x01vorbis": "vorbis", b"OpusHead": "opus"}
"""Codecs named by the first packet of an Ogg stream, by its magic."""


@dataclass(frozen=True)
class Sniffed:
    """A file's first bytes (and its path, when it has one), as decoders judge it."""

    head: bytes
    path: str | os.PathLike[str] | None = None
    """None for a file given as bytes (an object fetched from storage)."""

    @property
    def ogg_codec(self) -> str | None:
        """``vorbis`` or ``opus`` when the file starts such an Ogg stream.

        The first Ogg page is a 27-byte header, a segment table, then the codec's
        identification packet, which starts with its magic.
        """
        head = self.head
        if len(head) < 28 or head[:4] != b"OggS":
            return None
        packet = 27 + head[26]
        for magic, name in OGG_CODECS.items():
            if head[packet : packet + len(magic)] == magic:
                return name
        return None


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file_reason(mode: int) -> str | None:
    """Why something with this ``st_mode`` is not decoded, or None for a regular file.

    Only regular files are read: a FIFO would block a decoder forever and a device such
    as ``/dev/urandom`` never ends.
    """
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    kind = next((name for test, name in _KINDS if test(mode)), "something else")
    return f"not a regular file ({kind})"


def sniff(source: AudioInput) -> Sniffed:
    """The file's first bytes, which say what it holds; raises :class:`DecodeError` with
    one clear reason for the common OS-level failures, before any decoder runs."""
    if isinstance(source, bytes):
        if not source:
            raise DecodeError("empty file (0 bytes)")
        return Sniffed(source[:HEAD_BYTES])
    try:
        if reason := not_a_file_reason(os.stat(source).st_mode):
            raise DecodeError(reason)
        with open(source, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except FileNotFoundError:
        reason = "broken symlink" if os.path.islink(source) else "file not found"
        raise DecodeError(reason) from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as exc:
        raise DecodeError(f"cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # a name with a NUL byte, from a manifest
        raise DecodeError(f"cannot read it ({exc})") from None
    if not head:
        raise DecodeError("empty file (0 bytes)")
    return Sniffed(head, source)


def ogg_has_end_of_stream(source: AudioInput) -> bool:
    """Whether the last Ogg page carries the end-of-stream flag; a cut file lacks it."""
    if isinstance(source, bytes):
        tail = source[-65536:]
    else:
        with open(source, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read()
    pos = tail.rfind(b"OggS")
    return pos >= 0 and pos + 5 < len(tail) and bool(tail[pos + 5] & 0x04)


def wav_missing_bytes(source: AudioInput) -> int:
    """How many bytes of its data chunk a RIFF WAV lacks (0 when whole, or when the header
    does not know the length: 0 and 0xFFFFFFFF are what streaming writers leave there).

    libsndfile shortens such a chunk to the bytes present without a word, so a WAV cut
    in a copy would convert to a shorter file as if nothing were wrong.
    """
    if isinstance(source, bytes):
        head, size = source[:4096], len(source)
    else:
        with open(source, "rb") as fh:
            head, size = fh.read(4096), os.fstat(fh.fileno()).st_size
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            if length in (0, 0xFFFFFFFF):
                return 0
            return max(0, pos + 8 + length - size)
        pos += 8 + length + (length & 1)
    return 0
