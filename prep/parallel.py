"""Running batches of work in parallel with joblib, results handed back as they finish."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
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
) -> list[T]:
    """``[func(batch, **kwargs) for batch in batches]``, spread over ``jobs`` worker processes.

    ``jobs`` 0 means all cores; 1 runs in this process with no worker start-up. Every
    batch is submitted at once, so a worker that finishes early takes the next batch;
    callers that need results as they happen have the workers journal them.
    """
    jobs = min(jobs or default_jobs(), len(batches))
    if jobs <= 1:
        return [func(batch, **kwargs) for batch in batches]
    parallel = Parallel(n_jobs=jobs, backend=local_backend())
    return parallel(delayed(func)(batch, **kwargs) for batch in batches)
