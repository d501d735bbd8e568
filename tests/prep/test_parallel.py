"""prep.parallel: batches over real worker processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prep.parallel import Workers


class BatchBroke(Exception):
    pass


def _mark_or_break(batch: list[str], folder: Path) -> int:
    """Mark each name done in ``folder``; the name "broken" raises, as a full disk would."""
    for name in batch:
        if name == "broken":
            raise BatchBroke(f"{name}: no space left")
        (folder / name).write_text(str(os.getpid()))
    return len(batch)


def test_a_batch_that_raises_lets_the_others_finish_then_raises_in_this_process(tmp_path):
    """A raising batch used to make joblib terminate the pool mid-run (the path where a
    run was once seen hanging, workers dead and the parent waiting): now every other batch
    finishes, the pool ends as a finished run's does, and the error comes back here."""
    batches = [["broken"], *([f"item{i}"] for i in range(11))]
    with Workers(2) as workers, pytest.raises(BatchBroke, match="broken: no space left"):
        workers.run(_mark_or_break, batches, folder=tmp_path)
    done = sorted(p.name for p in tmp_path.iterdir())
    assert done == sorted(f"item{i}" for i in range(11))
    assert len({p.read_text() for p in tmp_path.iterdir()}) >= 1  # in worker processes
    assert all(p.read_text() != str(os.getpid()) for p in tmp_path.iterdir())


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def _raise_unpicklable(batch: list[str]) -> None:
    raise _Unpicklable(f"{batch[0]} broke")


def test_an_exception_the_pool_cannot_carry_keeps_its_words_and_the_workers_stack():
    with Workers(2) as workers, pytest.raises(RuntimeError) as raised:
        workers.run(_raise_unpicklable, [["a"], ["b"]])
    assert str(raised.value) == "_Unpicklable: a broke"
    assert "in _raise_unpicklable" in raised.value.__notes__[0]


def test_batches_without_errors_return_in_order(tmp_path):
    batches = [[f"item{i}"] * (i + 1) for i in range(5)]
    with Workers(2) as workers:
        assert workers.run(_mark_or_break, batches, folder=tmp_path) == [1, 2, 3, 4, 5]
