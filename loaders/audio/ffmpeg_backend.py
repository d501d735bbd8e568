"""ffmpeg as a backend: a process that pipes WAV (float32) to memory, never to a file.

Used for what libsndfile refuses (AAC, m4a, video containers...). The ffmpeg on PATH is
preferred; otherwise the binary shipped by the ``imageio-ffmpeg`` package.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

import numpy as np

from loaders.audio.base import BLOCK_FRAMES, AudioInfo, AudioInput, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError, DecodeError, all_finite, not_finite, one_line

_STDERR_KEEP = 4096


class FfmpegError(RuntimeError):
    """ffmpeg could not decode a file; the message is ffmpeg's own first error line."""


@functools.cache
def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary: ``$AUDIOPREP_FFMPEG``, then PATH, then imageio-ffmpeg's."""
    explicit = os.environ.get("AUDIOPREP_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffmpeg_version() -> str:
    out = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-version"], capture_output=True, text=True
    ).stdout
    words = out.split()
    return words[2] if len(words) > 2 else "unknown"


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise FfmpegError("ffmpeg produced no audio")
    return data


def _parse_wav_header(stream: IO[bytes]) -> tuple[int, int]:
    """Read a streamed WAV header up to the data chunk; return (sample_rate, channels)."""
    riff = _read_exact(stream, 12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise FfmpegError("ffmpeg output is not WAV")
    sample_rate = channels = 0
    while True:
        chunk_id, size = struct.unpack("<4sI", _read_exact(stream, 8))
        if chunk_id == b"data":
            break
        body = _read_exact(stream, size + (size & 1))
        if chunk_id == b"fmt ":
            _fmt, channels, sample_rate = struct.unpack("<HHI", body[:8])
    if not sample_rate or not channels:
        raise FfmpegError("ffmpeg output has no format chunk")
    return sample_rate, channels


class FfmpegStream:
    """A running ffmpeg decode of one file: sample rate, channels and float32 blocks."""

    def __init__(self, path: AudioInput) -> None:
        """``path`` may be the bytes of a whole file: fed to ffmpeg's stdin by a thread."""
        import ffmpeg  # ffmpeg-python builds the command line

        in_memory = isinstance(path, bytes)
        args = (
            ffmpeg.input("pipe:" if in_memory else str(path))
            .output("pipe:", format="wav", acodec="pcm_f32le", map="0:a:0", loglevel="error")
            .global_args("-hide_banner", *([] if in_memory else ["-nostdin"]))
            .compile(cmd=ffmpeg_executable())
        )
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if in_memory else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self._feed = None
        if in_memory:
            self._feed = threading.Thread(target=self._feed_stdin, args=(path,), daemon=True)
            self._feed.start()
        try:
            self.sample_rate, self.channels = _parse_wav_header(self._proc.stdout)
        except (FfmpegError, struct.error):
            self.close()
            raise FfmpegError(self._error_line() or "ffmpeg produced no audio") from None
        self._head = self._proc.stdout.read(self.channels * 4)
        self.empty = not self._head
        """ffmpeg wrote no sample at all: it found no audio it could decode."""

    def _feed_stdin(self, data: bytes) -> None:
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            pass  # ffmpeg stopped reading (bad input, or closed early)
        finally:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def _drain_stderr(self) -> None:
        for line in self._proc.stderr:
            if len(self._stderr) < _STDERR_KEEP:
                self._stderr.extend(line)

    def _error_line(self) -> str:
        lines = [ln.strip() for ln in self._stderr.decode("utf-8", "replace").splitlines()]
        lines = [ln.split("] ", 1)[-1] for ln in lines if ln]
        return lines[-1] if lines else ""

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Yield float32 arrays of shape [n, channels]; raise if ffmpeg reported an error."""
        bytes_per_block = frames * self.channels * 4
        head, self._head = self._head, b""
        while True:
            data = head + self._proc.stdout.read(bytes_per_block - len(head))
            head = b""
            if not data:
                break
            usable = len(data) - len(data) % (self.channels * 4)
            yield np.frombuffer(data[:usable], dtype="<f4").reshape(-1, self.channels)
        code = self._proc.wait()
        self._drain.join()
        if code != 0 or self._stderr:
            raise FfmpegError(self._error_line() or f"ffmpeg exited with status {code}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._feed is not None:
            self._feed.join()
        self._proc.stdout.close()
        self._drain.join()
        self._proc.stderr.close()


class FfmpegReader(AudioReader):
    """ffmpeg decoding; its error-level messages (a cut stream, bad frames) fail the file."""

    in_process = False

    def __init__(self, path: AudioInput) -> None:
        try:
            self._stream = FfmpegStream(path)
        except FfmpegError as exc:
            raise CannotOpenError(f"ffmpeg cannot decode it ({exc})") from None
        except OSError as exc:
            raise CannotOpenError(f"ffmpeg could not be run ({exc.strerror})") from None
        except Exception as exc:
            raise CannotOpenError(f"ffmpeg cannot decode it ({one_line(exc)})") from None
        try:
            self.info = AudioInfo(
                sample_rate=self._stream.sample_rate,
                channels=self._stream.channels,
                frames=None,
                format="ffmpeg",
                decoder=FfmpegDecoder.name,
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
                if not all_finite(block):  # float32 from any source, float ones included
                    raise not_finite(block, decoded, self.info.sample_rate)
                decoded += len(block)
                yield block
        except FfmpegError as exc:
            raise DecodeError(f"ffmpeg reported an error ({exc})") from None
        except OSError as exc:
            raise DecodeError(f"reading ffmpeg's output failed ({exc.strerror})") from None

    def close(self) -> None:
        self._stream.close()


class FfmpegDecoder(Decoder):
    """The ffmpeg binary: what libsndfile refuses, after it in ``auto``."""

    name = "ffmpeg"

    @classmethod
    def open(cls, source: AudioInput) -> FfmpegReader:
        return FfmpegReader(source)
