"""GStreamer as a backend: a ``gst-launch-1.0`` process that pipes raw float32 to memory.

Only by name (``--decoder gstreamer``), never in ``auto``. How it avoids silent wrong data:

- The samples come through a pipe of their own (``fdsink``); the rate and channel count
  come from the caps ``gst-launch-1.0 -v`` reports on stdout before the first sample.
  (``wavenc`` to a pipe cannot be parsed like ffmpeg's WAV: at the end of the stream it
  appends its tag chunk after the data, which would be read as samples.)
- The file is handed over as an open descriptor (``/dev/fd/N``), so gst-launch never
  parses a file name (a backslash breaks ``location=``); bytes go in a memfd, so Ogg
  end trimming is the same as for a file.
- gst-launch decodes a cut file to where it ends, and skips corrupt frames, and exits 0
  without a warning; so the decoded length is checked against the length the header
  states (as libsndfile reads it; exactly for FLAC and WAV), and Ogg's end-of-stream page
  and WAV's data size are checked as the soundfile backend does.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import numpy as np

from loaders.audio.base import BLOCK_FRAMES, AudioInfo, AudioInput, AudioReader, Decoder
from loaders.audio.errors import CannotOpenError, DecodeError, all_finite, not_finite
from loaders.audio.sniff import ogg_has_end_of_stream, wav_missing_bytes
from loaders.audio.soundfile_backend import seeks_exactly

GST_LAUNCH = "gst-launch-1.0"
INSTALL_HINT = (
    "install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "(Debian/Ubuntu apt-get; other systems: their GStreamer 1.x tools and base/good plugins)"
)
_CAPS_LINE = re.compile(r"GstCapsFilter:out\.GstPad:src: caps = (audio/x-raw.*)")
_RATE = re.compile(r"rate=\(int\)(\d+)")
_CHANNELS = re.compile(r"channels=\(int\)(\d+)")
_STDERR_KEEP = 4096
# A shortfall against a stated length that is not exact, tolerated before a file counts as
# truncated (the soundfile backend's: mp3 headers without a Xing/LAME tag only estimate it).
# gst-launch drops a corrupt frame without a word, so for exact lengths none is tolerated.
_TRUNCATION_TOLERANCE_FRAMES = 2 * 1152
_TRUNCATION_TOLERANCE_FRACTION = 0.01


def gst_launch_executable() -> str | None:
    """The gst-launch-1.0 on PATH, or None."""
    return shutil.which(GST_LAUNCH)


@functools.cache
def gst_version(executable: str) -> str:
    out = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"GStreamer (\S+)", out)
    return found.group(1) if found else "unknown"


def _caps(line: str) -> tuple[int, int]:
    rate, channels = _RATE.search(line), _CHANNELS.search(line)
    return (int(rate.group(1)) if rate else 0, int(channels.group(1)) if channels else 0)


def stated_frames(source: AudioInput) -> tuple[int, int, bool] | None:
    """(frames, sample rate, whether exact) that the header states, as libsndfile reads
    it: exact for PCM in FLAC and WAV, an estimate where an mp3 lacks a Xing/LAME tag.
    None where libsndfile does not read the format (then only gst-launch's own errors
    count)."""
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as f:
            return f.frames, f.samplerate, seeks_exactly(f.format, f.subtype)
    except Exception:  # any format libsndfile refuses: nothing stated that it can read
        return None


class GstStream:
    """A running gst-launch decode of one file: its caps, then float32 blocks."""

    def __init__(self, executable: str, source: AudioInput) -> None:
        self._fds: list[int] = []
        if isinstance(source, bytes):
            src_fd = os.memfd_create("audioprep-gst")
            self._fds.append(src_fd)
            os.write(src_fd, source)
        else:
            src_fd = os.open(source, os.O_RDONLY)
            self._fds.append(src_fd)
        data_r, data_w = os.pipe()
        self._data = os.fdopen(data_r, "rb")
        pipeline = [
            executable, "-v",
            "filesrc", f"location=/dev/fd/{src_fd}", "!", "decodebin", "!", "audioconvert",
            "!", "capsfilter", "name=out", "caps=audio/x-raw,format=F32LE,layout=interleaved",
            "!", "fdsink", f"fd={data_w}",
        ]  # fmt: skip
        try:
            self._proc = subprocess.Popen(
                pipeline,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(src_fd, data_w),
                text=True,
                errors="replace",
            )
        except BaseException:
            self._data.close()
            self._close_fds()
            raise
        finally:
            os.close(data_w)
        self._stderr: list[str] = []
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self.sample_rate, self.channels = self._first_caps()
        self._later_caps: set[str] = set()
        self._notes = threading.Thread(target=self._follow_stdout, daemon=True)
        self._notes.start()
        self._head = self._data.read(self.channels * 4) if self.channels else b""
        self.empty = not self._head
        """gst-launch piped no sample at all."""

    def _first_caps(self) -> tuple[int, int]:
        """Read stdout up to the caps of the samples (printed before the first one);
        (0, 0) when the process ends first (it failed: its stderr says why)."""
        for line in self._proc.stdout:
            if found := _CAPS_LINE.search(line):
                self._first = found.group(1).strip()
                return _caps(self._first)
        return 0, 0

    def _follow_stdout(self) -> None:
        """Keep reading stdout; a second, different caps line means the rate or channels
        changed midway, which blocks of one shape cannot carry."""
        for line in self._proc.stdout:
            found = _CAPS_LINE.search(line)
            if found and _caps(found.group(1)) != _caps(self._first):
                self._later_caps.add(found.group(1).strip())

    def _drain_stderr(self) -> None:
        for line in self._proc.stderr:
            if sum(map(len, self._stderr)) < _STDERR_KEEP:
                self._stderr.append(line.strip())

    def error_line(self) -> str:
        """gst-launch's first ERROR or WARNING line, without the element path."""
        self._drain.join()
        for line in self._stderr:
            if line.startswith(("ERROR", "WARNING")):
                return line.split(": ", 2)[-1] if " from element " in line else line
        return next((line for line in self._stderr if line), "")

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Yield float32 arrays of shape [n, channels]; raise if gst-launch failed."""
        size = self.channels * 4
        head, self._head = self._head, b""
        while True:
            data = head + self._data.read(frames * size - len(head))
            head = b""
            if not data:
                break
            if len(data) % size:  # only at the very end: a cut sample
                raise DecodeError(f"gst-launch ended inside a sample ({len(data)} bytes)")
            yield np.frombuffer(data, dtype="<f4").reshape(-1, self.channels)
        code = self._proc.wait()
        self._notes.join()
        error = self.error_line()
        if code != 0 or error:
            raise DecodeError(f"gstreamer reported an error ({error or f'exit status {code}'})")
        if self._later_caps:
            raise DecodeError(
                f"its format changes midway ({self._first} -> {sorted(self._later_caps)[0]})"
            )

    def _close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._data.close()
        self._drain.join()
        if hasattr(self, "_notes"):
            self._notes.join()
        self._proc.stdout.close()
        self._proc.stderr.close()
        self._close_fds()


class GstReader(AudioReader):
    """gst-launch decoding, checked against the length the file's header states."""

    in_process = False

    def __init__(self, source: AudioInput) -> None:
        executable = gst_launch_executable()
        if executable is None:
            raise CannotOpenError(f"{GST_LAUNCH} not found: {INSTALL_HINT}")
        if not isinstance(source, bytes):
            source = os.fspath(source)
        try:
            self._stream = GstStream(executable, source)
        except OSError as exc:
            raise CannotOpenError(f"gst-launch could not be run ({exc.strerror})") from None
        try:
            if not self._stream.sample_rate:
                reason = self._stream.error_line() or "no audio caps"
                raise CannotOpenError(f"gstreamer cannot decode it ({reason})")
            self.info = AudioInfo(
                sample_rate=self._stream.sample_rate,
                channels=self._stream.channels,
                frames=None,
                format="gstreamer",
                decoder=GstDecoder.name,
                decoder_version=f"gstreamer {gst_version(executable)}",
            ).check()
            self._check_container(source)
        except BaseException:
            self.close()
            raise
        self.empty = self._stream.empty

    def _check_container(self, source: AudioInput) -> None:
        """What gst-launch decodes without a word: a cut Ogg or WAV; and the length the
        header states, checked when the decode ends."""
        if isinstance(source, bytes):
            head = source[:4]
        else:
            with open(source, "rb") as fh:
                head = fh.read(4)
        if head == b"OggS" and not ogg_has_end_of_stream(source):
            raise DecodeError("truncated Ogg stream (no end-of-stream page)")
        if missing := wav_missing_bytes(source):
            raise DecodeError(
                f"truncated: {missing} bytes of the data its header announces are missing"
            )
        stated = stated_frames(source)
        same_rate = stated is not None and stated[1] == self.info.sample_rate
        self._expected = stated[0] if same_rate else 0
        inexact = max(_TRUNCATION_TOLERANCE_FRAMES, self._expected * _TRUNCATION_TOLERANCE_FRACTION)
        self._tolerance = 0 if same_rate and stated[2] else inexact

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        decoded = 0
        try:
            for block in self._stream.blocks(frames):
                if not all_finite(block):
                    raise not_finite(block, decoded, self.info.sample_rate)
                decoded += len(block)
                yield block
        except OSError as exc:
            raise DecodeError(f"reading gst-launch's output failed ({exc.strerror})") from None
        expected, sr = self._expected, self.info.sample_rate
        if expected and decoded < expected - self._tolerance:
            raise DecodeError(
                f"truncated or corrupt: decoded {decoded} of the {expected} frames "
                f"({decoded / sr:.2f} of {expected / sr:.2f} s) its header announces"
            )

    def close(self) -> None:
        self._stream.close()


class GstDecoder(Decoder):
    """The gst-launch-1.0 binary; chosen by name only."""

    name = "gstreamer"

    @classmethod
    def unavailable(cls) -> str | None:
        if gst_launch_executable() is None:
            return f"--decoder {cls.name}: {GST_LAUNCH} not found: {INSTALL_HINT}"
        return None

    @classmethod
    def open(cls, source: AudioInput) -> GstReader:
        return GstReader(source)
