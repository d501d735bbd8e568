"""Fixtures shared by every test folder; plain helpers live in :mod:`helpers` (a module of
its own, because ``conftest`` is not meant to be imported)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CORE_FORMATS, MEL, make_file
from lockcheck import environment_problem

from prep.convert import ConvertOptions, convert
from prep.shard import ShardOptions, shard

LONGEST_FIRST = (
    "test_readme.py",
    "prep/test_bench.py",
    "prep/test_shard.py",
    "prep/test_storage.py",
    "prep/test_dask.py",
    "prep/test_runs.py",
)
"""Test files that take a minute or more, started first: ``make test`` runs whole files on
each core (``pytest -n auto --dist loadfile``), and a long file started last would run
alone at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST_FIRST` first, in that order; every file keeps its own
    order (the README's blocks run in turn)."""

    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next(
            (i for i, name in enumerate(LONGEST_FIRST) if path.endswith("/tests/" + name)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A drifted or broken install stops the run in one line before any test."""
    problem = environment_problem()
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture(scope="session")
def converted_set(tmp_path_factory) -> Path:
    """Built once per run, read by many modules; copy it before changing anything.

    ``src/``: clips of varied length under speaker folders, one with a transcript and one
    with a tricky name; ``conv/``: their ``prep convert`` output.
    """
    root = tmp_path_factory.mktemp("prepared")
    src = root / "src"
    for i, seconds in enumerate([0.7, 2.3, 5.0, 11.2]):
        make_file(src / f"spk{i % 2}" / f"utt{i}.mp3", seconds=seconds)
    make_file(src / "Track 2.0 (Clean).flac", seconds=3.1)
    (src / "spk0" / "utt0.txt").write_text("hello there")
    assert convert(src, root / "conv", ConvertOptions(jobs=1)).failed == 0
    return root


@pytest.fixture(scope="session")
def sharded_set(converted_set) -> Path:
    """``converted_set``'s ``conv/`` in helpers.CORE_FORMATS (2 s items, 3 per shard, MEL),
    in its ``sh/`` folder; read-only like it."""
    out = converted_set / "sh"
    options = ShardOptions(formats=CORE_FORMATS, segment=32000, mel=MEL, shard_size=3, jobs=2)
    assert shard(converted_set / "conv", out, options).failed == 0
    return out
