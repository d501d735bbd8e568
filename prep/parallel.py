"""Running batches of work in parallel with joblib, results handed back as they finish."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from joblib import Parallel, delayed

T = TypeVar("T")


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_backend() -> str:
    """joblib backend for one machine: forked workers where fork exists.

    Forked workers inherit the parent's imports and start in milliseconds; loky's fresh
    interpreters take about 0.7 s to start and import numpy, soundfile and soxr again,
    which is most of the run on a few minutes of audio.
    """
    return "multiprocessing" if "fork" in multiprocessing.get_all_start_methods() else "loky"


def run_batches(
    func: Callable[..., T], batches: Sequence[Any], jobs: int = 0, **kwargs: Any
) -> Iterator[T]:
    """Yield ``func(batch, **kwargs)`` for every batch as results come back.

    ``jobs`` 0 means all cores; 1 runs in this process with no worker start-up.
    joblib's forked pool returns whole lists, so it is fed waves of ``jobs`` batches,
    one pool kept for all of them; callers sort batches by size so a wave ends together.
    """
    jobs = min(jobs or default_jobs(), len(batches))
    if jobs <= 1:
        for batch in batches:
            yield func(batch, **kwargs)
        return
    backend = local_backend()
    if backend != "multiprocessing":
        parallel = Parallel(n_jobs=jobs, backend=backend, return_as="generator_unordered")
        yield from parallel(delayed(func)(batch, **kwargs) for batch in batches)
        return
    with Parallel(n_jobs=jobs, backend=backend) as parallel:
        for start in range(0, len(batches), jobs):
            wave = batches[start : start + jobs]
            yield from parallel(delayed(func)(batch, **kwargs) for batch in wave)
