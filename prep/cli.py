"""The ``prep`` command: option parsing only; the work is done by library functions."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

import click

from manifests import ManifestError
from prep.sources import SourceError

log = logging.getLogger("prep")

_USER_ERRORS = (SourceError, ManifestError)


def _setup_logging(verbosity: int) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@contextlib.contextmanager
def _progress(label: str, total: int | None, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """One click progress line on a terminal; nothing at all otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


verbosity_options = [
    click.option("-q", "--quiet", "quiet", is_flag=True, help="Only warnings and errors."),
    click.option("-v", "--verbose", "verbose", is_flag=True, help="Debug output."),
]


def _verbosity(func: Callable) -> Callable:
    for option in reversed(verbosity_options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """audioprep: convert, shard, load and benchmark audio for training."""


@main.command()
@click.argument("src", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--to", "to", default="wav16", show_default=True, help="wav16 or flac16.")
@click.option("--sr", "sample_rate", type=int, default=16000, show_default=True)
@click.option("--channels", default="mix", show_default=True, help="mix (average) or first.")
@click.option("--min-duration", type=float, default=None, help="Skip shorter files (seconds).")
@click.option("--max-duration", type=float, default=None, help="Skip longer files (seconds).")
@click.option("--decoder", default="auto", show_default=True, help="auto, soundfile or ffmpeg.")
@click.option("--quality", default="HQ", show_default=True, help="soxr quality: LQ MQ HQ VHQ.")
@click.option("--ext", "extensions", multiple=True, help="Another extension to pick up.")
@click.option("--overwrite", is_flag=True, help="Redo files that are already converted.")
@click.option("-j", "--jobs", type=int, default=0, help="Worker processes [all cores].")
@_verbosity
def convert(src, out, quiet, verbose, **kwargs) -> None:
    """Convert audio under SRC (a folder or a .jsonl manifest) to 16-bit mono files in OUT."""
    from prep.convert import ConvertOptions, UsageError, check_paths
    from prep.convert import convert as run_convert
    from prep.sources import discover

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    kwargs["extensions"] = tuple(kwargs["extensions"])
    try:
        options = ConvertOptions(**kwargs)
        options.validate()
        from pathlib import Path

        check_paths(Path(src), Path(out))
        total = len(discover(src, options.extensions)) if sys.stderr.isatty() else None
        with _progress("converting", total, quiet) as progress:
            summary = run_convert(src, out, options, progress)
    except (UsageError, *_USER_ERRORS) as exc:
        _fail(str(exc))
    log.warning(summary.line()) if summary.failed else log.info(summary.line())
    if summary.failed:
        log.warning("failures are listed in %s/errors.jsonl", out)
        sys.exit(1)


@main.command()
@click.option(
    "--src",
    type=click.Path(exists=True, file_okay=False, path_type=str),
    default=None,
    help="Your own audio folder instead of the built-in demo corpus.",
)
@click.option("--out", type=click.Path(path_type=str), default="bench-results", show_default=True)
@click.option("--quick", "mode", flag_value="quick", help="A tiny corpus, one repeat (seconds).")
@click.option("--full", "mode", flag_value="full", help="Three repeats.")
@click.option("-j", "--jobs", type=int, default=0, help="Parallelism for both sides [all cores].")
@_verbosity
def bench(src, out, mode, jobs, quiet, verbose) -> None:
    """Measure convert speed and memory on this machine; write OUT/report.md."""
    from pathlib import Path

    from prep.bench import BenchOptions, run_bench

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    options = BenchOptions(
        out=Path(out), src=Path(src) if src else None, mode=mode or "default", jobs=jobs
    )
    report, table = run_bench(options)
    click.echo(table)
    click.echo(f"\nreport: {report}")


if __name__ == "__main__":  # pragma: no cover
    main()
