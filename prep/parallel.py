"""Running batches of work in parallel with joblib, results handed back as they finish."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from joblib import Parallel, delayed

from prep.errors import UsageError

T = TypeVar("T")


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def batch_by_size(
    items: Sequence[T], size_of: Callable[[T], int], workers: int, max_items: int = 64
) -> list[list[T]]:
    """Group work items by size in bytes so per-task overhead does not dominate short clips.

    A batch holds about 1/4 of a worker's share of the bytes (between 256 KB and 16 MB),
    so every worker gets several batches and a long file is never queued behind others.
    Biggest first, ties in the given order: the grouping is deterministic.
    """
    sized = sorted(((size_of(i), n, i) for n, i in enumerate(items)), key=lambda p: (-p[0], p[1]))
    total = sum(nbytes for nbytes, _, _ in sized)
    max_bytes = min(16 << 20, max(256 << 10, total // (4 * max(1, workers))))
    batches: list[list[T]] = []
    current: list[T] = []
    current_bytes = 0
    for nbytes, _, item in sized:
        if current and (current_bytes + nbytes > max_bytes or len(current) >= max_items):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += nbytes
    if current:
        batches.append(current)
    return batches


def local_backend() -> str:
    """joblib backend for one machine: forked workers where fork exists.

    Forked workers inherit the parent's imports and start in milliseconds; loky's fresh
    interpreters take about 0.7 s to start and import numpy, soundfile and soxr again,
    which is most of the run on a few minutes of audio.
    """
    return "multiprocessing" if "fork" in multiprocessing.get_all_start_methods() else "loky"


_PR_SET_PDEATHSIG = 1
_dies_with_parent = False


def _die_with_parent() -> None:
    """Have the kernel kill this worker when the process that started it dies.

    A ``kill -9`` of ``prep`` otherwise leaves its workers writing into OUT for seconds,
    where a rerun can race them. Linux only; elsewhere a no-op.
    """
    global _dies_with_parent
    if _dies_with_parent:
        return
    _dies_with_parent = True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


class _Raised:
    """A batch's exception, handed back as its result (see :meth:`Workers.run`)."""

    def __init__(self, exc: Exception) -> None:
        stack = "".join(traceback.format_exception(exc)).rstrip()  # the worker's, kept
        try:
            pickle.dumps(exc)
        except Exception:  # the pool could not hand it back: keep its words
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        exc.add_note(stack)
        self.exc = exc


def _in_local_worker(func: Callable[..., T], batch: Any, **kwargs: Any) -> T | _Raised:
    _die_with_parent()
    try:
        return func(batch, **kwargs)
    except Exception as exc:
        return _Raised(exc)


BACKENDS = ("local", "dask")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def scheduler_address(scheduler: str | None) -> str:
    """``--scheduler``, else ``$DASK_SCHEDULER_ADDRESS``; a one-line error when neither."""
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if not address:
        raise UsageError(f"--backend dask needs --scheduler ADDRESS or ${SCHEDULER_ENV}")
    return address


def check_backend(backend: str, scheduler: str | None) -> None:
    """Refuse an unknown backend, or dask without a scheduler, before any work starts."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown --backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "dask":
        scheduler_address(scheduler)


class Workers:
    """Where batches run: this machine's cores (joblib, forked workers), or the workers of
    a Dask cluster (joblib's Dask backend over a ``distributed.Client``).

    Used as a context manager, so a cluster connection is opened once per run and its
    size is known before the work is cut into batches.
    """

    def __init__(self, jobs: int = 0, backend: str = "local", scheduler: str | None = None):
        check_backend(backend, scheduler)
        self.jobs = jobs
        self.backend = backend
        self.scheduler = scheduler_address(scheduler) if backend == "dask" else None
        self._client = None

    def __enter__(self) -> Workers:
        if self.backend == "dask":
            from distributed import Client

            try:
                self._client = Client(self.scheduler)  # distributed.comm.timeouts.connect
            except OSError as exc:
                raise UsageError(
                    f"cannot reach the Dask scheduler {self.scheduler}: {exc}"
                ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def count(self) -> int:
        """How many batches can run at once: cores here, or threads across the cluster."""
        if self._client is not None:
            return max(1, sum(self._client.nthreads().values()))
        return self.jobs or default_jobs()

    @property
    def remote(self) -> bool:
        return self._client is not None

    def run(self, func: Callable[..., T], batches: Sequence[Any], **kwargs: Any) -> list[T]:
        """``[func(batch, **kwargs) for batch in batches]``, spread over the workers.

        Every batch is submitted at once, so a worker that finishes early takes the next;
        callers that need results as they happen have the workers journal them. On Dask, a
        batch lost with a dying worker is run again elsewhere (the scheduler's doing), so
        ``func`` must be safe to repeat: ours write atomically and deterministically.
        """
        if self._client is not None:
            from joblib import parallel_config

            with parallel_config(backend="dask", wait_for_workers_timeout=20):
                parallel = Parallel(n_jobs=-1, batch_size=1, pre_dispatch="all")
                return parallel(delayed(func)(batch, **kwargs) for batch in batches)
        jobs = min(self.count, len(batches))
        if jobs <= 1:
            return [func(batch, **kwargs) for batch in batches]
        # A batch's exception comes back as its result and is raised here once every batch
        # has run: a task that raises makes joblib terminate the pool while workers are
        # busy, the path where a run was seen hanging (workers dead, this process waiting),
        # and it stopped the other batches, which must still be done.
        parallel = Parallel(n_jobs=jobs, backend=local_backend())
        results = parallel(delayed(_in_local_worker)(func, batch, **kwargs) for batch in batches)
        raised = next((r.exc for r in results if isinstance(r, _Raised)), None)
        if raised is not None:
            raise raised
        return results


def run_batches(
    func: Callable[..., T], batches: Sequence[Any], jobs: int = 0, **kwargs: Any
) -> list[T]:
    """``[func(batch, **kwargs) for batch in batches]`` over ``jobs`` local worker processes
    (0: all cores; 1: in this process, no worker start-up)."""
    return Workers(jobs).run(func, batches, **kwargs)
