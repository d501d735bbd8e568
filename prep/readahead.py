"""Decoding a long file one block ahead, in a thread, while the caller processes the last.

Decoding is 60-80% of converting a file; mixdown, resampling and writing are the rest.
libsndfile, libavcodec, soxr and numpy release the GIL, so a decoder thread and the
caller overlap on two cores: one long file converts about 1.3x faster when a core is
free, which is the end of every run (the last long files) and any run with fewer files
than workers. Short files are decoded inline, where a thread would only add overhead.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import numpy as np

from loaders.audio.base import BLOCK_FRAMES, AudioReader

READ_AHEAD_MIN_FRAMES = 4 * BLOCK_FRAMES
"""Files shorter than this (about 6 s at 44.1 kHz) are decoded inline."""

_DONE = object()


class ReadAhead:
    """A reader whose ``blocks`` come from a decoder thread, at most ``depth`` ahead.

    The thread owns the underlying reader until :meth:`stop` has joined it, so the reader
    is never closed while a decode call is running (a use-after-free in C otherwise).
    """

    def __init__(self, reader: AudioReader, depth: int = 2) -> None:
        self.reader = reader
        self.info = reader.info
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _decode(self, blocks: Iterator[np.ndarray]) -> None:
        try:
            for block in blocks:
                if not self._put(block):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        return self._ahead(self.reader.blocks(frames))

    def range_blocks(
        self, start: int, stop: int, frames: int = BLOCK_FRAMES
    ) -> Iterator[np.ndarray]:
        """One range of the file (see ``AudioReader.range_blocks``), read ahead."""
        return self._ahead(self.reader.range_blocks(start, stop, frames))

    def _ahead(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        self.stop()  # a range read before this one, left early
        self._stop.clear()
        self._queue = queue.Queue(self._queue.maxsize)
        self._thread = threading.Thread(target=self._decode, args=(blocks,), daemon=True)
        self._thread.start()
        while (item := self._queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """Stop the decoder thread (if the consumer left early) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


@contextlib.contextmanager
def read_ahead(reader: AudioReader) -> Iterator[AudioReader | ReadAhead]:
    """``reader`` itself for short files and readers that decode in another process
    (an ffmpeg pipe already runs alongside), else a :class:`ReadAhead` over it, stopped
    on exit."""
    frames = reader.info.frames
    if not reader.in_process or frames is None or frames < READ_AHEAD_MIN_FRAMES:
        yield reader
        return
    ahead = ReadAhead(reader)
    try:
        yield ahead
    finally:
        ahead.stop()
