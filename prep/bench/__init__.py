"""``prep bench``: measure every step on this machine, side by side in one run, and report."""

from prep.bench.options import BenchOptions, Mode
from prep.bench.run import run_bench

__all__ = ["BenchOptions", "Mode", "run_bench"]
