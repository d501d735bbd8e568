"""``prep bench``: measure every step on this machine, side by side in one run, and report.

``run_bench`` is imported on first use: checking the options (``prep.bench.options``)
must not wait for torch and matplotlib."""

from prep.bench.options import BenchOptions, Mode

__all__ = ["BenchOptions", "Mode", "run_bench"]


def __getattr__(name: str):
    if name == "run_bench":
        from prep.bench.run import run_bench

        return run_bench
    raise AttributeError(f"module 'prep.bench' has no attribute {name!r}")
