"""Decode any audio file to mono float32 at a target rate, in bounded blocks, in memory.

One code path for ``prep convert``, ``prep shard`` and the on-the-fly loaders, so that
audio prepared offline and audio decoded during training are the same samples.
libsndfile (through soundfile) reads wav, flac, mp3, ogg vorbis and opus in process;
files it refuses go through an ffmpeg pipe. Both detect the format from the content,
not from the extension. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import math
import os
import stat
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import soundfile as sf
import soxr
from soundfile import _ffi, _snd  # the C handle, for reads that do not seek (see below)

from loaders.ffmpeg import FfmpegError, FfmpegStream, ffmpeg_version

Decoder = Literal["auto", "soundfile", "pyav", "ffmpeg"]
ChannelMode = Literal["mix", "first"]
DECODERS: tuple[str, ...] = ("auto", "soundfile", "pyav", "ffmpeg")
AUDIO_EXTENSIONS: tuple[str, ...] = ("mp3", "ogg", "oga", "opus", "flac", "wav")
"""What a folder walk picks up, case-insensitively (decoding itself goes by content)."""


def is_audio_name(name: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a file name has one of the audio extensions (or one of ``extra``)."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return suffix in AUDIO_EXTENSIONS or suffix in {e.lower().lstrip(".") for e in extra}


CHANNEL_MODES: tuple[str, ...] = ("mix", "first")
RESAMPLE_QUALITIES: tuple[str, ...] = ("LQ", "MQ", "HQ", "VHQ")

BLOCK_FRAMES = 1 << 16
"""Frames decoded per block: about 0.5 MB of stereo float32, so memory stays flat."""

INT16_SCALE = 32768.0
"""int16 <-> float32 scale, the same as soundfile's: float = int16 / 32768."""

# Shortfall against the header's frame count tolerated before a file counts as truncated:
# mp3 headers without a Xing/LAME tag only estimate the length.
_TRUNCATION_TOLERANCE_FRAMES = 2 * 1152
_TRUNCATION_TOLERANCE_FRACTION = 0.01


class DecodeError(Exception):
    """A file that cannot be decoded completely; the message is one readable line."""


class CannotOpenError(DecodeError):
    """One decoder refuses the file's format: ``--decoder auto`` tries the next one."""


MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
"""Input rates outside this range are broken headers (a 1 Hz WAV makes 100 s of output
from 244 bytes), not audio."""
MAX_CHANNELS = 255
"""Opus's limit; more is a broken header (and 65,535 channels would need 17 GB a block)."""


def _one_line(exc: BaseException) -> str:
    """An exception from inside a decoding library as one line: its type and message."""
    text = " ".join(str(exc).split()).rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _all_finite(block: np.ndarray) -> bool:
    """Whether a float block holds no NaN or infinity: one sum (NaN and inf survive it),
    and an exact check only when the sum is not finite."""
    return math.isfinite(float(block.sum())) or bool(np.isfinite(block).all())


def _not_finite(block: np.ndarray, decoded: int, sample_rate: int) -> DecodeError:
    """The error for a block that failed :func:`_all_finite`, at its first bad sample."""
    bad = np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
    seconds = (decoded + int(bad[0])) / sample_rate
    return DecodeError(f"NaN or infinite samples (at {seconds:.2f} s): a broken float file")


@dataclass(frozen=True)
class AudioInfo:
    """What a decoder announces about a file before decoding it."""

    sample_rate: int
    channels: int
    frames: int | None
    format: str
    decoder: str
    decoder_version: str

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


AudioInput = str | os.PathLike[str] | bytes
"""A file's path, or the bytes of a whole file."""


def _ogg_has_end_of_stream(path: AudioInput) -> bool:
    """Whether the last Ogg page carries the end-of-stream flag; a cut file lacks it."""
    if isinstance(path, bytes):
        tail = path[-65536:]
    else:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read()
    pos = tail.rfind(b"OggS")
    return pos >= 0 and pos + 5 < len(tail) and bool(tail[pos + 5] & 0x04)


def wav_missing_bytes(path: AudioInput) -> int:
    """How many bytes of its data chunk a RIFF WAV lacks (0 when whole, or when the header
    does not know the length: 0 and 0xFFFFFFFF are what streaming writers leave there).

    libsndfile shortens such a chunk to the bytes present without a word, so a WAV cut
    in a copy would convert to a shorter file as if nothing were wrong.
    """
    if isinstance(path, bytes):
        head, size = path[:4096], len(path)
    else:
        with open(path, "rb") as fh:
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


EXACT_SEEK_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "FLAC"})
"""libsndfile containers whose header states the exact length and whose seeks land on the
sample, so a file can be decoded as independent ranges (mp3 and Ogg seeks are not)..."""
EXACT_SEEK_SUBTYPES = frozenset(
    {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
)
"""...holding samples coded one by one (not ADPCM or GSM blocks, whose seeks are left
to each codec)."""


class SoundfileReader:
    """libsndfile decoding with checks that a file was decoded to its announced end."""

    def __init__(self, path: AudioInput) -> None:
        self.path = path
        try:
            self._file = sf.SoundFile(io.BytesIO(path) if isinstance(path, bytes) else path)
        except sf.LibsndfileError as exc:
            raise CannotOpenError(
                f"libsndfile cannot open it ({_libsndfile_reason(exc)})"
            ) from None
        except Exception as exc:  # anything else from inside soundfile: still one line
            raise CannotOpenError(f"libsndfile cannot open it ({_one_line(exc)})") from None
        fmt = self._file.format
        frames = self._file.frames
        self._float = self._file.subtype in ("FLOAT", "DOUBLE")
        """Only float samples can be NaN: integer sources are not checked."""
        try:
            self.info = AudioInfo(
                sample_rate=self._file.samplerate,
                channels=self._file.channels,
                frames=frames,
                format=f"{fmt}/{self._file.subtype}",
                decoder="soundfile",
                decoder_version=f"libsndfile {sf.__libsndfile_version__}",
            ).check()
            if fmt == "OGG" and not _ogg_has_end_of_stream(path):
                raise DecodeError("truncated Ogg stream (no end-of-stream page)")
            if fmt in ("WAV", "WAVEX") and (missing := wav_missing_bytes(path)):
                raise DecodeError(
                    f"truncated: {missing} bytes of the data its header announces are missing"
                )
        except BaseException:
            self.close()
            raise
        self.empty = not frames
        """Its header announces no audio: ``--decoder auto`` asks the next decoder."""

    def _read_sequential(self, frames: int) -> np.ndarray:
        """Read the next ``frames`` with ``sf_readf_float`` and no seek around it.

        ``SoundFile.read`` seeks to its own idea of the position after every call, and
        mpg123's seeks in a VBR mp3 are approximate: block-wise reads through it return
        wrong samples after each block boundary. Sequential reads are exact.
        """
        out = np.empty((frames, self.info.channels), dtype=np.float32)
        handle = self._file._file
        got = _snd.sf_readf_float(handle, _ffi.from_buffer("float[]", out), frames)
        error = _snd.sf_error(handle)
        if error:
            raise DecodeError(_ffi.string(_snd.sf_error_number(error)).decode("utf-8", "replace"))
        return out[:got] if got < frames else out

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        expected = self.info.frames or 0
        decoded = yield from self._blocks_until(None, frames, 0)
        tolerance = max(_TRUNCATION_TOLERANCE_FRAMES, expected * _TRUNCATION_TOLERANCE_FRACTION)
        if expected and decoded < expected - tolerance:
            raise self._truncated(decoded)

    def range_blocks(
        self, start: int, stop: int, frames: int = BLOCK_FRAMES
    ) -> Iterator[np.ndarray]:
        """Frames ``start`` to ``stop`` of the file, exactly.

        For files libsndfile seeks to the sample (PCM in FLAC or WAV: :data:`EXACT_SEEK_FORMATS`),
        whose headers state the length exactly: a range that ends early is a truncated file.
        """
        try:
            self._file.seek(start)
        except Exception as exc:
            reason = (
                _libsndfile_reason(exc) if isinstance(exc, sf.LibsndfileError) else _one_line(exc)
            )
            raise DecodeError(
                f"cannot seek to {start / self.info.sample_rate:.2f} s ({reason})"
            ) from None
        decoded = yield from self._blocks_until(stop, frames, start)
        if decoded < stop:
            raise self._truncated(decoded)

    def _blocks_until(
        self, stop: int | None, frames: int, decoded: int
    ) -> Generator[np.ndarray, None, int]:
        """Read sequentially from frame ``decoded`` to ``stop`` (or the end); return where
        it ended."""
        while stop is None or decoded < stop:
            want = frames if stop is None else min(frames, stop - decoded)
            try:
                block = self._read_sequential(want)
            except Exception as exc:
                reason = str(exc).rstrip(".") if isinstance(exc, DecodeError) else _one_line(exc)
                raise DecodeError(
                    f"decoding failed after {decoded / self.info.sample_rate:.2f} s ({reason})"
                ) from None
            if not len(block):
                break
            if self._float and not _all_finite(block):
                raise _not_finite(block, decoded, self.info.sample_rate)
            decoded += len(block)
            yield block
        return decoded

    def _truncated(self, decoded: int) -> DecodeError:
        sr, expected = self.info.sample_rate, self.info.frames or 0
        return DecodeError(
            f"truncated: decoded {decoded / sr:.2f} s of the {expected / sr:.2f} s "
            "its header announces"
        )

    def close(self) -> None:
        self._file.close()


class FfmpegReader:
    """ffmpeg decoding; its error-level messages (a cut stream, bad frames) fail the file."""

    def __init__(self, path: AudioInput) -> None:
        try:
            self._stream = FfmpegStream(path)
        except FfmpegError as exc:
            raise CannotOpenError(f"ffmpeg cannot decode it ({exc})") from None
        except OSError as exc:
            raise CannotOpenError(f"ffmpeg could not be run ({exc.strerror})") from None
        except Exception as exc:
            raise CannotOpenError(f"ffmpeg cannot decode it ({_one_line(exc)})") from None
        try:
            self.info = AudioInfo(
                sample_rate=self._stream.sample_rate,
                channels=self._stream.channels,
                frames=None,
                format="ffmpeg",
                decoder="ffmpeg",
                decoder_version=f"ffmpeg {ffmpeg_version()}",
            ).check()
        except BaseException:
            self.close()
            raise
        self.empty = self._stream.empty
        """ffmpeg piped no sample: ``--decoder auto`` asks the next decoder."""

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        decoded = 0
        try:
            for block in self._stream.blocks(frames):
                if not _all_finite(block):  # float32 from any source, float ones included
                    raise _not_finite(block, decoded, self.info.sample_rate)
                decoded += len(block)
                yield block
        except FfmpegError as exc:
            raise DecodeError(f"ffmpeg reported an error ({exc})") from None
        except OSError as exc:
            raise DecodeError(f"reading ffmpeg's output failed ({exc.strerror})") from None

    def close(self) -> None:
        self._stream.close()


class PyAVReader:
    """libavcodec in process (PyAV), for Ogg Vorbis and Opus.

    Measured on one core: Vorbis 1.3-1.4x and Opus 2.5x faster than libsndfile, which
    makes them the slowest codecs to convert otherwise. libavcodec hands out frames of a
    few hundred samples; they are gathered into blocks of ``frames`` so the per-block
    work downstream (mixdown, resampling, writing) is not paid per frame.
    """

    def __init__(self, path: AudioInput) -> None:
        import av

        self.path = path
        self._float = False
        try:
            self._container = av.open(io.BytesIO(path) if isinstance(path, bytes) else str(path))
        except Exception as exc:  # av.FFmpegError, and whatever else PyAV raises
            raise CannotOpenError(f"libavcodec cannot open it ({_pyav_reason(exc)})") from None
        try:
            self._open_stream(path)
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception) and not isinstance(exc, DecodeError):
                raise CannotOpenError(f"libavcodec cannot open it ({_pyav_reason(exc)})") from None
            raise

    def _open_stream(self, path: AudioInput) -> None:
        """Find the audio stream, check its header, and decode its first frame, which
        tells whether the file holds any audio for libavcodec."""
        import av

        if not self._container.streams.audio:
            raise DecodeError("no audio stream")
        self._stream = self._container.streams.audio[0]
        codec = self._stream.codec_context
        rate = codec.sample_rate
        frames = None
        if self._stream.duration is not None and self._stream.time_base is not None:
            frames = round(float(self._stream.duration * self._stream.time_base) * rate)
        self.info = AudioInfo(
            sample_rate=rate,
            channels=codec.channels,
            frames=frames,
            format=f"{self._container.format.name}/{codec.name}",
            decoder="pyav",
            decoder_version=_pyav_version(),
        ).check()
        if self._container.format.name == "ogg" and not _ogg_has_end_of_stream(path):
            raise DecodeError("truncated Ogg stream (no end-of-stream page)")
        self._frames = self._container.decode(self._stream)
        try:
            self._first = next(self._frames, None)
        except av.FFmpegError as exc:
            raise DecodeError(f"decoding failed after 0.00 s ({_pyav_reason(exc)})") from None
        self.empty = self._first is None
        """libavcodec decoded no frame: ``--decoder auto`` asks the next decoder."""
        self._float = self._stream.codec_context.name in _FLOAT_CODECS
        """Only float samples can be NaN: float PCM is checked, codecs are not (a check
        costs 1-2% of decoding Vorbis, whose decoded floats come from integer codes)."""

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        channels, rate = self.info.channels, self.info.sample_rate
        pending: list[list[np.ndarray]] = [[] for _ in range(channels)]
        have = decoded = 0
        first, self._first = self._first, None
        try:
            for frame in itertools.chain([first] if first is not None else [], self._frames):
                for rows, plane in zip(pending, _frame_planes(frame, channels), strict=True):
                    rows.append(plane)
                have += frame.samples
                decoded += frame.samples
                if have >= frames:
                    joined = _join_rows(pending, have)
                    if self._float and not _all_finite(joined):
                        raise _not_finite(joined.T, decoded - have, rate)
                    whole = have - have % frames
                    for start in range(0, whole, frames):
                        yield joined[:, start : start + frames].T  # [frames, channels]
                    pending = [[row[whole:]] for row in joined]
                    have -= whole
            if have:
                joined = _join_rows(pending, have)
                if self._float and not _all_finite(joined):
                    raise _not_finite(joined.T, decoded - have, rate)
                yield joined.T
        except DecodeError:
            raise
        except Exception as exc:  # av.FFmpegError, and whatever else PyAV raises
            raise DecodeError(
                f"decoding failed after {decoded / rate:.2f} s ({_pyav_reason(exc)})"
            ) from None

    def close(self) -> None:
        self._container.close()


_FLOAT_CODECS = frozenset({"pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_f64be", "pcm_f24le"})


def _join_rows(pending: list[list[np.ndarray]], count: int) -> np.ndarray:
    """Each channel's gathered pieces joined into one ``[channels, count]`` float32 array:
    one copy per block, not one per decoded frame."""
    joined = np.empty((len(pending), count), dtype=np.float32)
    for row, pieces in zip(joined, pending, strict=True):
        np.concatenate(pieces, out=row)
    return joined


def _frame_planes(frame, channels: int) -> list[np.ndarray] | np.ndarray:
    """A decoded frame's channels as float32 rows in [-1, 1].

    Vorbis and Opus decode to planar float: each plane's buffer is read in place, which
    costs a third of what ``frame.to_ndarray()`` does per frame of a few hundred samples
    (measured: Vorbis 1,350x vs 900x real time per core). Other formats are converted.
    """
    if frame.format.name == "fltp":
        count = frame.samples
        return [np.frombuffer(plane, np.float32, count) for plane in frame.planes[:channels]]
    return _planar_float32(frame.to_ndarray(), frame.format, channels)


def _planar_float32(array: np.ndarray, fmt, channels: int) -> np.ndarray:
    """A decoded frame as ``[channels, n]`` float32 in [-1, 1], whatever its sample format."""
    if not fmt.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype == np.float32:
        return array
    if array.dtype.kind == "i":
        return array.astype(np.float32) / np.float32(-float(np.iinfo(array.dtype).min))
    return array.astype(np.float32)


def _pyav_reason(exc: Exception) -> str:
    import av

    if isinstance(exc, av.FFmpegError):
        return " ".join(str(exc.strerror or exc).split()).rstrip(".")
    return _one_line(exc)


@functools.cache
def _pyav_version() -> str:
    import av

    libavcodec = ".".join(str(v) for v in av.library_versions["libavcodec"])
    return f"PyAV {av.__version__}, libavcodec {libavcodec}"


PYAV_CODECS = (b"\x01vorbis", b"OpusHead")
"""Codecs ``--decoder auto`` hands to PyAV: the first packet of an Ogg stream names them."""


def _prefers_pyav(head: bytes) -> bool:
    """Whether the file starts an Ogg Vorbis or Ogg Opus stream (by content, not name).

    The first Ogg page is a 27-byte header, a segment table, then the codec's
    identification packet, which starts with its magic.
    """
    if len(head) < 28 or head[:4] != b"OggS":
        return False
    packet = 27 + head[26]
    return any(head[packet : packet + len(magic)] == magic for magic in PYAV_CODECS)


AudioReader = SoundfileReader | PyAVReader | FfmpegReader


def _libsndfile_reason(exc: sf.LibsndfileError) -> str:
    text = str(getattr(exc, "error_string", "") or exc)
    if "does not exist or is not a regular file" in text:
        return "unrecognised format"
    return text.rstrip(".")


_HEAD_BYTES = 512


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


def _check_readable(path: AudioInput) -> bytes:
    """Turn the common OS-level failures into one clear reason before any decoder runs;
    return the file's first bytes, which say what it holds."""
    if isinstance(path, bytes):
        if not path:
            raise DecodeError("empty file (0 bytes)")
        return path[:_HEAD_BYTES]
    try:
        if reason := not_a_file_reason(os.stat(path).st_mode):
            raise DecodeError(reason)
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except FileNotFoundError:
        reason = "broken symlink" if os.path.islink(path) else "file not found"
        raise DecodeError(reason) from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as exc:
        raise DecodeError(f"cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # a name with a NUL byte, from a manifest
        raise DecodeError(f"cannot read it ({exc})") from None
    if not head:
        raise DecodeError("empty file (0 bytes)")
    return head


_OPENERS: dict[str, type[SoundfileReader | PyAVReader | FfmpegReader]] = {
    "soundfile": SoundfileReader,
    "pyav": PyAVReader,
    "ffmpeg": FfmpegReader,
}


def _decoder_order(decoder: Decoder, head: bytes) -> tuple[str, ...]:
    """The decoders to try, in order: the chosen one alone, or for ``auto`` the fastest
    for the codec first (PyAV for Ogg Vorbis and Opus, else libsndfile), then the rest."""
    if decoder != "auto":
        return (decoder,)
    if _prefers_pyav(head):
        return ("pyav", "soundfile", "ffmpeg")
    return ("soundfile", "ffmpeg", "pyav")


def _open_first(path: AudioInput, order: tuple[str, ...]) -> AudioReader:
    """The first decoder in ``order`` that opens the file and finds audio in it.

    One that refuses the format (:class:`CannotOpenError`) or decodes nothing from a
    file that is not empty hands it to the next; any other error is the file's. When
    none finds audio, the first that opened it stands (the file holds no audio).
    """
    refusals: list[str] = []
    empty: AudioReader | None = None
    for name in order:
        try:
            reader = _OPENERS[name](path)
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
            return reader
        if empty is None:
            empty = reader
        else:
            reader.close()
    if empty is not None:
        return empty
    if len(refusals) == 1:
        raise DecodeError(refusals[0])
    raise DecodeError(f"not decodable: {'; '.join(refusals)}")


@contextlib.contextmanager
def open_audio(path: AudioInput, decoder: Decoder = "auto") -> Iterator[AudioReader]:
    """Open ``path`` for block decoding with the fastest in-process decoder for its codec:
    PyAV for Ogg Vorbis and Opus, libsndfile for the rest, then the others for what it
    refuses or finds no audio in (a 32-bit FLAC, a WAV whose header says 0 bytes).

    ``path`` may also be the bytes of a whole file (an object fetched from storage): it
    is decoded from memory by every decoder, never through a temporary file. Only
    regular files are opened; anything else fails with :class:`DecodeError`.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}")
    head = _check_readable(path)
    reader = _open_first(path, _decoder_order(decoder, head))
    try:
        yield reader
    finally:
        reader.close()


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
    decoder: Decoder = "auto",
    quality: str = "HQ",
) -> np.ndarray:
    """The whole file as mono float32 at ``sample_rate``, through the same path as ``prep``."""
    with open_audio(path, decoder) as reader:
        return concat(iter_mono(reader, sample_rate, channels, quality))


_quiet_lock = threading.Lock()
_quiet_state: dict[str, int] = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what C libraries (mpg123 via libsndfile) write straight to file descriptor 2.

    It redirects the whole process's stderr; threads share one redirection (the first in
    sets it up, the last out restores it), as in a Dask worker running several batches.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            sys.stderr.flush()
            _quiet_state["saved"] = os.dup(fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                os.dup2(_quiet_state["saved"], fd)
                os.close(_quiet_state["saved"])
