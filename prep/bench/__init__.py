"""``prep bench``: measure every step on this machine, side by side in one run, and report."""

from prep.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
