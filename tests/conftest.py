"""Fixtures shared by every test folder; plain helpers live in :mod:`helpers` (a module of
its own, because ``conftest`` is not meant to be imported)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lockcheck import environment_problem


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
