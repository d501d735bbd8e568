"""The report's plots (PNG): loader throughput by parallelism and by batch size (box plots,
as in the wav2vec data-loading experiments), best throughput per format, data stall."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prep.bench.loader_bench import LoaderRow, best_rows  # noqa: E402
from prep.bench.step_bench import StepRow  # noqa: E402


def _box_by(rows: list[LoaderRow], key, title: str, path: Path) -> Path:
    names = list(dict.fromkeys(r.name for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        groups: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            if r.name == name:
                groups[key(r)].append(r.samples_per_second)
        labels = sorted(groups, key=lambda k: (k.endswith("threads"), float(k.split()[0])))
        ax.boxplot([groups[k] for k in labels], tick_labels=labels)
        ax.set_title(name if len(name) < 28 else name[:26] + "…", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(axis="x", labelsize=7, rotation=45)
    axes[0][0].set_ylabel("samples/s")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(out: Path, loader_rows: list[LoaderRow], step_rows: list[StepRow]) -> list[Path]:
    paths = [
        _box_by(
            loader_rows,
            lambda r: r.parallelism,
            "Throughput by parallelism",
            out / "throughput_by_workers.png",
        ),
        _box_by(
            loader_rows,
            lambda r: str(r.batch_size),
            "Throughput by batch size",
            out / "throughput_by_batch_size.png",
        ),
    ]
    best = sorted(best_rows(loader_rows).values(), key=lambda r: r.samples_per_second)
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.5 * len(best)))
    ax.barh([textwrap.fill(r.name, 40) for r in best], [r.samples_per_second for r in best])
    ax.set_xscale("log")
    ax.set_xlabel("samples/s (best setting of each)")
    fig.tight_layout()
    fig.savefig(out / "throughput_by_format.png", dpi=110)
    plt.close(fig)
    paths.append(out / "throughput_by_format.png")
    if step_rows:
        fig, ax = plt.subplots(figsize=(10, 0.8 + 0.6 * len(step_rows)))
        labels = [textwrap.fill(f"{r.consumer}: {r.loader}", 48) for r in step_rows]
        ax.barh(labels, [100 * r.stall for r in step_rows])
        ax.set_xlabel("data stall, % of step time")
        ax.set_xlim(0, 100)
        fig.tight_layout()
        fig.savefig(out / "data_stall.png", dpi=110)
        plt.close(fig)
        paths.append(out / "data_stall.png")
    return paths
