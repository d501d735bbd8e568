"""Running batches of work in parallel with joblib, results streamed back as they finish."""

from __future__ import annotations

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


def run_batches(
    func: Callable[..., T], batches: Sequence[Any], jobs: int = 0, **kwargs: Any
) -> Iterator[T]:
    """Yield ``func(batch, **kwargs)`` for every batch, in completion order.

    ``jobs`` 0 means all cores; 1 runs in this process with no worker start-up.
    """
    jobs = jobs or default_jobs()
    if jobs == 1 or len(batches) <= 1:
        for batch in batches:
            yield func(batch, **kwargs)
        return
    parallel = Parallel(n_jobs=min(jobs, len(batches)), return_as="generator_unordered")
    yield from parallel(delayed(func)(batch, **kwargs) for batch in batches)
