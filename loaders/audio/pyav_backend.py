"""libavcodec in process (PyAV): what ``auto`` tries first for Ogg Vorbis and Opus.

Measured on one core: Vorbis 1.3-1.4x and Opus 2.5x faster than libsndfile, which makes
them the slowest codecs to convert otherwise. ``av`` is imported when a file is opened.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Iterator

import numpy as np

from loaders.audio.base import BLOCK_FRAMES, AudioInfo, AudioInput, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError, DecodeError, all_finite, not_finite, one_line
from loaders.audio.sniff import Sniffed, ogg_has_end_of_stream

PREFERRED_OGG_CODECS = frozenset({"vorbis", "opus"})
"""Ogg codecs ``auto`` hands to PyAV before the other backends."""


class PyAVReader(AudioReader):
    """libavcodec decoding. It hands out frames of a few hundred samples; they are
    gathered into blocks of ``frames`` so the per-block work downstream (mixdown,
    resampling, writing) is not paid per frame.
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
            decoder=PyAVDecoder.name,
            decoder_version=_pyav_version(),
        ).check()
        if self._container.format.name == "ogg" and not ogg_has_end_of_stream(path):
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
                    if self._float and not all_finite(joined):
                        raise not_finite(joined.T, decoded - have, rate)
                    whole = have - have % frames
                    for start in range(0, whole, frames):
                        yield joined[:, start : start + frames].T  # [frames, channels]
                    pending = [[row[whole:]] for row in joined]
                    have -= whole
            if have:
                joined = _join_rows(pending, have)
                if self._float and not all_finite(joined):
                    raise not_finite(joined.T, decoded - have, rate)
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
    return one_line(exc)


@functools.cache
def _pyav_version() -> str:
    import av

    libavcodec = ".".join(str(v) for v in av.library_versions["libavcodec"])
    return f"PyAV {av.__version__}, libavcodec {libavcodec}"


class PyAVDecoder(Decoder):
    """libavcodec in process; first for Ogg Vorbis and Opus, last otherwise."""

    name = "pyav"

    @classmethod
    def prefers(cls, sniffed: Sniffed) -> bool:
        return sniffed.ogg_codec in PREFERRED_OGG_CODECS

    @classmethod
    def open(cls, source: AudioInput) -> PyAVReader:
        return PyAVReader(source)
