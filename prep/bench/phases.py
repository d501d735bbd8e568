"""Where the bench's own time goes: wall and CPU seconds per phase, kept in the results
so a slower bench shows which phase grew."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Phase:
    name: str
    wall_seconds: float
    cpu_seconds: float  # this process and its children, all cores together


@dataclass
class PhaseClock:
    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block; CPU counts children once they have been waited for."""
        wall, cpu = time.perf_counter(), _cpu()
        try:
            yield
        finally:
            done = Phase(name, time.perf_counter() - wall, _cpu() - cpu)
            self.phases.append(done)
            log.info("  %s: %.0f s (%.0f CPU-s)", name, done.wall_seconds, done.cpu_seconds)

    @property
    def total_wall(self) -> float:
        return sum(p.wall_seconds for p in self.phases)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
