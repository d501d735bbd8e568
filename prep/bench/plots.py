"""The report's plots (PNG): loader throughput by parallelism and by batch size, best
throughput per format, data stall. Every bar carries its value, so small bars still read."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prep.bench.loader_bench import (  # noqa: E402
    LoaderRow,
    best_rows,
    one_setting_names,
    threads_text,
)
from prep.bench.step_bench import StepRow  # noqa: E402

PANEL_COLUMNS = 3


def _parallelism_label(row: LoaderRow) -> str:
    if row.threads:
        return threads_text(row.workers)
    if row.workers == 0:
        return "no workers"
    word = "worker" if row.workers == 1 else "workers"
    return f"{row.workers} {word}\n" + ("shared slots" if row.shared else "own hand-over")


def _parallelism_order(row: LoaderRow) -> tuple:
    return (row.threads, row.workers, not row.shared)


def _bars_by(
    rows: list[LoaderRow],
    label: Callable[[LoaderRow], str],
    order: Callable[[LoaderRow], tuple],
    title: str,
    path: Path,
) -> Path | None:
    """One panel per format, one bar per category (the best of the other settings), the
    same linear y-scale in every panel. None when no panel would have two categories."""
    names = list(dict.fromkeys(r.name for r in rows))
    panels: dict[str, dict[str, tuple[tuple, float]]] = {}
    for name in names:
        bars: dict[str, tuple[tuple, float]] = {}
        for r in rows:
            if r.name == name:
                key, speed = label(r), r.items_per_second
                if key not in bars or speed > bars[key][1]:
                    bars[key] = (order(r), speed)
        panels[name] = bars
    if all(len(bars) < 2 for bars in panels.values()):
        return None
    columns = min(PANEL_COLUMNS, len(names))
    lines = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(
        lines, columns, figsize=(4.4 * columns, 3.3 * lines), sharey=True, squeeze=False
    )
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        bars = sorted(panels[name].items(), key=lambda kv: kv[1][0])
        labels = [k for k, _ in bars]
        speeds = [v for _, (_, v) in bars]
        drawn = ax.bar(range(len(bars)), speeds, color="tab:blue")
        ax.bar_label(drawn, [f"{v:,.0f}" for v in speeds], fontsize=7, padding=2)
        ax.set_xticks(range(len(bars)), labels, fontsize=7)
        ax.set_title(textwrap.fill(name, 34), fontsize=8)
        ax.margins(y=0.15)
    for ax in axes[:, 0]:
        ax.set_ylabel("items/s")
    fig.suptitle(f"{title} (items/s, best of the other settings; same scale in every panel)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _best_by_format(rows: list[LoaderRow], path: Path) -> Path:
    best = sorted(best_rows(rows).values(), key=lambda r: r.items_per_second)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.5 * len(best)))
    drawn = ax.barh([textwrap.fill(r.name, 40) for r in best], [r.items_per_second for r in best])
    labels = [f"{r.items_per_second:,.0f} ({r.parallelism}, batch {r.batch_size})" for r in best]
    ax.bar_label(drawn, labels, fontsize=8, padding=3)
    ax.set_xscale("log")
    speeds = [r.items_per_second for r in best]
    ax.set_xlim(min(speeds) / 2, max(speeds) * 60)  # room for the labels on the log scale
    ax.set_xlabel("items/s, log scale (best setting of each)")
    ax.set_title("Best loader throughput by format")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _data_stall(rows: list[StepRow], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.55 * len(rows)))
    labels = [textwrap.fill(f"{r.consumer}: {r.loader}", 52) for r in rows]
    stalls = [100 * (r.stall or 0.0) for r in rows]
    drawn = ax.barh(labels, stalls, color="tab:orange")
    ax.bar_label(drawn, [r.stall_text for r in rows], fontsize=8, padding=3)
    ax.invert_yaxis()  # the table's order, top to bottom
    ax.set_xlim(0, 115)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("data stall, % of step time (1 - ideal / actual)")
    ax.set_title("Training steps: time spent waiting for data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(out: Path, loader_rows: list[LoaderRow], step_rows: list[StepRow]) -> list[Path]:
    """Every plot the rows support; a plot with one category per panel is left out, and
    rows measured at one setting only appear in the plot by format."""
    single = set(one_setting_names(loader_rows))
    swept = [r for r in loader_rows if r.name not in single]
    paths = [
        _bars_by(
            swept,
            _parallelism_label,
            _parallelism_order,
            "Throughput by parallelism",
            out / "throughput_by_workers.png",
        ),
        _bars_by(
            swept,
            lambda r: str(r.batch_size),
            lambda r: (r.batch_size,),
            "Throughput by batch size",
            out / "throughput_by_batch_size.png",
        ),
        _best_by_format(loader_rows, out / "throughput_by_format.png"),
    ]
    if step_rows:
        paths.append(_data_stall(step_rows, out / "data_stall.png"))
    return [p for p in paths if p is not None]
