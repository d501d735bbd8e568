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
import os
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
            raise DecodeError(f"libsndfile cannot open it ({_libsndfile_reason(exc)})") from None
        fmt = self._file.format
        frames = self._file.frames
        self.info = AudioInfo(
            sample_rate=self._file.samplerate,
            channels=self._file.channels,
            frames=frames,
            format=f"{fmt}/{self._file.subtype}",
            decoder="soundfile",
            decoder_version=f"libsndfile {sf.__libsndfile_version__}",
        )
        if fmt == "OGG" and not _ogg_has_end_of_stream(path):
            self.close()
            raise DecodeError("truncated Ogg stream (no end-of-stream page)")

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
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = _libsndfile_reason(exc) if isinstance(exc, sf.LibsndfileError) else exc
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
            except DecodeError as exc:
                raise DecodeError(
                    f"decoding failed after {decoded / self.info.sample_rate:.2f} s "
                    f"({str(exc).rstrip('.')})"
                ) from None
            if not len(block):
                break
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
            raise DecodeError(f"ffmpeg cannot decode it ({exc})") from None
        except OSError as exc:
            raise DecodeError(f"ffmpeg could not be run ({exc.strerror})") from None
        self.info = AudioInfo(
            sample_rate=self._stream.sample_rate,
            channels=self._stream.channels,
            frames=None,
            format="ffmpeg",
            decoder="ffmpeg",
            decoder_version=f"ffmpeg {ffmpeg_version()}",
        )

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        try:
            yield from self._stream.blocks(frames)
        except FfmpegError as exc:
            raise DecodeError(f"ffmpeg reported an error ({exc})") from None

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
        try:
            self._container = av.open(io.BytesIO(path) if isinstance(path, bytes) else str(path))
        except (av.FFmpegError, ValueError) as exc:
            raise DecodeError(f"libavcodec cannot open it ({_pyav_reason(exc)})") from None
        try:
            self._stream = self._container.streams.audio[0]
        except IndexError:
            self.close()
            raise DecodeError("no audio stream") from None
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
        )
        if self._container.format.name == "ogg" and not _ogg_has_end_of_stream(path):
            self.close()
            raise DecodeError("truncated Ogg stream (no end-of-stream page)")

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        import av

        channels = self.info.channels
        pending: list[list[np.ndarray]] = [[] for _ in range(channels)]
        have = decoded = 0
        try:
            for frame in self._container.decode(self._stream):
                for rows, plane in zip(pending, _frame_planes(frame, channels), strict=True):
                    rows.append(plane)
                have += frame.samples
                decoded += frame.samples
                if have >= frames:
                    joined = _join_rows(pending, have)
                    whole = have - have % frames
                    for start in range(0, whole, frames):
                        yield joined[:, start : start + frames].T  # [frames, channels]
                    pending = [[row[whole:]] for row in joined]
                    have -= whole
        except av.FFmpegError as exc:
            raise DecodeError(
                f"decoding failed after {decoded / self.info.sample_rate:.2f} s "
                f"({_pyav_reason(exc)})"
            ) from None
        if have:
            yield _join_rows(pending, have).T

    def close(self) -> None:
        self._container.close()


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
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")


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


def _check_readable(path: AudioInput) -> bytes:
    """Turn the common OS-level failures into one clear reason before any decoder runs;
    return the file's first bytes, which say what it holds."""
    if isinstance(path, bytes):
        if not path:
            raise DecodeError("empty file (0 bytes)")
        return path[:_HEAD_BYTES]
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except FileNotFoundError:
        reason = "broken symlink" if os.path.islink(path) else "file not found"
        raise DecodeError(reason) from None
    except IsADirectoryError:
        raise DecodeError("is a directory") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as exc:
        raise DecodeError(f"cannot read it ({exc.strerror})") from None
    if not head:
        raise DecodeError("empty file (0 bytes)")
    return head


@contextlib.contextmanager
def open_audio(path: AudioInput, decoder: Decoder = "auto") -> Iterator[AudioReader]:
    """Open ``path`` for block decoding with the fastest in-process decoder for its codec:
    PyAV for Ogg Vorbis and Opus, libsndfile for the rest, ffmpeg for what it refuses.

    ``path`` may also be the bytes of a whole file (an object fetched from storage): it
    is decoded from memory by every decoder, never through a temporary file.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}")
    head = _check_readable(path)
    reader: AudioReader
    if decoder == "ffmpeg":
        reader = FfmpegReader(path)
    elif decoder == "pyav" or (decoder == "auto" and _prefers_pyav(head)):
        reader = PyAVReader(path)
    else:
        try:
            reader = SoundfileReader(path)
        except DecodeError as sf_error:
            if decoder == "soundfile" or "cannot open" not in str(sf_error):
                raise
            try:
                reader = FfmpegReader(path)
            except DecodeError as ff_error:
                raise DecodeError(f"not decodable: {sf_error}; {ff_error}") from None
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
