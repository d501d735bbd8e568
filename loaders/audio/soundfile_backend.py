"""libsndfile (through soundfile), in process: wav, flac, mp3, ogg vorbis and opus.

The only backend with range reads: PCM in FLAC and WAV seeks to the exact sample and
its header states the exact length, so a long file can be converted as parts.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator

import numpy as np
import soundfile as sf
from soundfile import _ffi, _snd  # the C handle, for reads that do not seek (see below)

from loaders.audio.base import BLOCK_FRAMES, AudioInfo, AudioInput, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError, DecodeError, all_finite, not_finite, one_line
from loaders.audio.sniff import ogg_has_end_of_stream, wav_missing_bytes

# Shortfall against the header's frame count tolerated before a file counts as truncated:
# mp3 headers without a Xing/LAME tag only estimate the length.
_TRUNCATION_TOLERANCE_FRAMES = 2 * 1152
_TRUNCATION_TOLERANCE_FRACTION = 0.01

EXACT_SEEK_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "FLAC"})
"""libsndfile containers whose header states the exact length and whose seeks land on the
sample, so a file can be decoded as independent ranges (mp3 and Ogg seeks are not)..."""
EXACT_SEEK_SUBTYPES = frozenset(
    {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
)
"""...holding samples coded one by one (not ADPCM or GSM blocks, whose seeks are left
to each codec)."""


def seeks_exactly(container: str, subtype: str) -> bool:
    """Whether libsndfile reads ranges of this container and subtype to the sample."""
    return container in EXACT_SEEK_FORMATS and subtype in EXACT_SEEK_SUBTYPES


def _libsndfile_reason(exc: sf.LibsndfileError) -> str:
    text = str(getattr(exc, "error_string", "") or exc)
    if "does not exist or is not a regular file" in text:
        return "unrecognised format"
    return text.rstrip(".")


class SoundfileReader(AudioReader):
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
            raise CannotOpenError(f"libsndfile cannot open it ({one_line(exc)})") from None
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
                decoder=SoundfileDecoder.name,
                decoder_version=f"libsndfile {sf.__libsndfile_version__}",
                exact_seeks=seeks_exactly(fmt, self._file.subtype),
            ).check()
            if fmt == "OGG" and not ogg_has_end_of_stream(path):
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
                _libsndfile_reason(exc) if isinstance(exc, sf.LibsndfileError) else one_line(exc)
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
                reason = str(exc).rstrip(".") if isinstance(exc, DecodeError) else one_line(exc)
                raise DecodeError(
                    f"decoding failed after {decoded / self.info.sample_rate:.2f} s ({reason})"
                ) from None
            if not len(block):
                break
            if self._float and not all_finite(block):
                raise not_finite(block, decoded, self.info.sample_rate)
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


class SoundfileDecoder(Decoder):
    """libsndfile: what ``auto`` tries first for everything but Ogg Vorbis and Opus."""

    name = "soundfile"
    range_reads = True
    exact_seeks = True

    @classmethod
    def open(cls, source: AudioInput) -> SoundfileReader:
        return SoundfileReader(source)
