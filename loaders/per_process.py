"""A handle opened lazily in each process that uses it, never inherited across a fork.

An h5py file or a memory map opened in the trainer must not be used by DataLoader workers
forked from it. A reader keeps such a handle in :class:`PerProcess`: opened on first use
in the current process, left behind when the reader is pickled, and closed only by the
process that opened it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` gives this process's handle, made by ``opener`` (picklable, e.g. a
    ``functools.partial``) the first time this process asks."""

    def __init__(self, opener: Callable[[], T]) -> None:
        self.opener = opener
        self._handle: T | None = None
        self._pid: int | None = None

    @property
    def opened(self) -> bool:
        """Whether this process holds an open handle."""
        return self._handle is not None and self._pid == os.getpid()

    def get(self) -> T:
        if not self.opened:
            self._handle = self.opener()
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's handle (one inherited from another process is only dropped)."""
        if self.opened and hasattr(self._handle, "close"):
            self._handle.close()
        self._handle = self._pid = None

    def __getstate__(self) -> dict:
        return {"opener": self.opener, "_handle": None, "_pid": None}
