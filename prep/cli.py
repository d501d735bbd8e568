"""The ``prep`` command: option parsing only; the work is done by library functions."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

import click

from loaders.audio.registry import DECODERS
from manifests import ManifestError
from prep.errors import RunError, UsageError, os_reason
from prep.sources import SourceError

log = logging.getLogger("prep")

_USER_ERRORS = (UsageError, SourceError, ManifestError)


def _setup_logging(verbosity: int) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries (botocore, distributed) speak up only to warn
    for name in ("prep", "loaders", "manifests"):
        logging.getLogger(name).setLevel(level)


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


def _finish(line: str, failed: int, out: str) -> None:
    """The run's summary line; exit status 1 when any file failed."""
    if failed:
        log.warning(line)
        log.warning("failures are listed in %s/errors.jsonl", out)
        sys.exit(1)
    log.info(line)


verbosity_options = [
    click.option("-q", "--quiet", "quiet", is_flag=True, help="Only warnings and errors."),
    click.option("-v", "--verbose", "verbose", is_flag=True, help="Debug output."),
]


def _verbosity(func: Callable) -> Callable:
    for option in reversed(verbosity_options):
        func = option(func)
    return func


def _backend_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--backend",
            default="local",
            show_default=True,
            help="local (this machine's cores) or dask (a cluster's workers).",
        ),
        click.option(
            "--scheduler",
            default=None,
            help="Dask scheduler address [$DASK_SCHEDULER_ADDRESS]; with --backend dask.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _Commands(click.Group):
    """Errors that end a whole run become one line, never a traceback: bad options or
    paths (exit 2, before any work), and an OS error such as a full disk or an
    unwritable OUT met while writing the run's own files (exit 1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _USER_ERRORS as exc:
            _fail(str(exc))
        except click.UsageError as exc:  # a subcommand's bad option, e.g. an unknown --decoder
            _fail(exc.format_message())
        except RunError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {os_reason(exc)}", err=True)
            sys.exit(1)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--decoder",
    type=click.Choice(tuple(DECODERS), case_sensitive=False),
    default="auto",
    show_default=True,
)
@click.option("--quality", default="HQ", show_default=True, help="soxr quality: LQ MQ HQ VHQ.")
@click.option("--ext", "extensions", multiple=True, help="Another extension to pick up.")
@click.option("--overwrite", is_flag=True, help="Redo files that are already converted.")
@click.option("-j", "--jobs", type=int, default=0, help="Worker processes [all cores].")
@_backend_options
@_verbosity
def convert(src, out, quiet, verbose, **kwargs) -> None:
    """Convert audio under SRC (a folder or a .jsonl manifest) to 16-bit mono files in OUT."""
    from prep.convert import ConvertOptions, check_paths
    from prep.convert import convert as run_convert
    from prep.sources import discover

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    kwargs["extensions"] = tuple(kwargs["extensions"])
    try:
        options = ConvertOptions(**kwargs)
        options.validate()
        check_paths(src, out)
        total = len(discover(src, options.extensions)) if sys.stderr.isatty() else None
        with _progress("converting", total, quiet) as progress:
            summary = run_convert(src, out, options, progress)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    _finish(summary.line(), summary.failed, out)


class _OneLineErrors(click.Command):
    """Bad options (a value out of range, an unknown choice, a missing argument) end in
    one ``error:`` line and exit status 2, like the checks the commands make themselves."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _fail(exc.format_message())


def _choice(*choices: str) -> click.Choice:
    return click.Choice(choices, case_sensitive=False)


def _mel_options(func: Callable) -> Callable:
    positive = click.IntRange(min=1)
    options = [
        click.option("--n-mels", type=positive, default=80, show_default=True),
        click.option("--n-fft", type=positive, default=400, show_default=True),
        click.option("--hop-length", type=positive, default=160, show_default=True),
        click.option("--f-min", type=click.FloatRange(min=0.0), default=0.0, show_default=True),
        click.option(
            "--f-max",
            type=click.FloatRange(min=0.0, min_open=True),
            default=None,
            help="Top of the mel band [half of --sr].",
        ),
        click.option(
            "--log",
            "log_scale",
            type=_choice("natural", "db"),
            default="natural",
            show_default=True,
        ),
        click.option(
            "--mel-dtype",
            type=_choice("float32", "float16", "uint8"),
            default="float32",
            show_default=True,
            help="float32, float16 or uint8 (quantised per item).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _duration(option: str, text: str | None, sample_rate: int) -> int | None:
    from prep.segmenting import parse_duration

    try:
        return parse_duration(text, sample_rate) if text is not None else None
    except ValueError as exc:
        _fail(f"{option} {exc}")


class _ByteSize(click.ParamType):
    """``256MB``, ``1G``, ``1000000``: a whole, positive, finite number of bytes."""

    name = "size"
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        clean = str(value).strip().lower().removesuffix("b").removesuffix("i")
        factor = self.units.get(clean[-1:], 1)
        number = clean[:-1] if clean[-1:] in self.units else clean
        try:
            size = float(number) * factor
        except ValueError:
            size = None
        if size is None or not 1 <= size < 1 << 50:
            self.fail(f"{value!r} is not a size (examples: 256MB, 1G, 1000000)", param, ctx)
        return int(size)


class _FormatList(click.ParamType):
    """``mel, webdataset``: registered format names (:mod:`prep.writers`) in the order
    given, any case and spacing, once each; each one a ``click.Choice`` of the registry
    as it is when the command line is read, so a plug-in's format counts."""

    name = "formats"

    def get_metavar(self, param, ctx=None) -> str:
        return "NAME[,NAME...]"

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        from prep.writers import writer_names

        if isinstance(value, tuple):
            return value
        names = [name.strip().lower() for name in str(value).split(",")]
        formats = tuple(dict.fromkeys(name for name in names if name))
        choice = _choice(*writer_names())
        unknown = [name for name in formats if name not in writer_names()]
        if unknown or not formats:
            self.fail(
                f"unknown --format {','.join(unknown)!r} (choose from {', '.join(choice.choices)})",
                param,
                ctx,
            )
        return tuple(choice.convert(name, param, ctx) for name in formats)


def _format_help() -> str:
    from prep.writers import writer_names

    return f"Comma-separated: {', '.join(writer_names())}."


def _jobs_option(help_text: str) -> Callable:
    return click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, help=help_text)


@main.command(cls=_OneLineErrors)
@click.argument("src", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option(
    "--format",
    "formats",
    type=_FormatList(),
    default="segments",
    show_default=True,
    help=_format_help(),
)
@click.option("--segment", default=None, help="Item length: 5s, 2.5s, 500ms or 80000samples.")
@click.option("--hop", default=None, help="Distance between segment starts [= --segment].")
@click.option(
    "--last",
    type=_choice("pad", "drop", "keep"),
    default="pad",
    show_default=True,
    help="Short tail: pad, drop or keep.",
)
@click.option(
    "--min-last",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Drop a tail shorter than this fraction of a segment, even with pad.",
)
@click.option(
    "--sr", "sample_rate", type=click.IntRange(1000, 384000), default=16000, show_default=True
)
@_mel_options
@click.option(
    "--shard-size", type=click.IntRange(min=1), default=None, help="Items per WebDataset shard."
)
@click.option("--shard-bytes", type=_ByteSize(), default=None, help="Bytes per shard [256MB].")
@click.option("--shuffle-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--codec", type=_choice("wav", "flac"), default="wav", show_default=True, help="Shard audio."
)
@click.option(
    "--hdf5-compression", type=_choice("none", "lzf", "gzip"), default="none", show_default=True
)
@click.option("--overwrite", is_flag=True, help="Rebuild formats that are already complete.")
@_jobs_option("Worker processes [all cores].")
@_backend_options
@_verbosity
def shard(
    src,
    out,
    formats,
    segment,
    hop,
    sample_rate,
    n_mels,
    n_fft,
    hop_length,
    f_min,
    f_max,
    log_scale,
    quiet,
    verbose,
    **kwargs,
) -> None:
    """Cut SRC (a prep convert folder, a manifest or any audio) into training formats in OUT."""
    from prep.shard import ShardOptions
    from prep.shard import shard as run_shard

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    options = ShardOptions(
        formats=formats,
        sample_rate=sample_rate,
        segment=_duration("--segment", segment, sample_rate),
        hop=_duration("--hop", hop, sample_rate),
        mel={
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "f_min": f_min,
            "f_max": sample_rate / 2 if f_max is None else f_max,
            "log": log_scale,
        },
        **kwargs,
    )
    try:
        summary = run_shard(src, out, options)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    for error in summary.errors:  # as convert reports each failed file
        log.error("error: %s: %s", error["source"], error["reason"])
    _finish(summary.line(), summary.failed, out)


@main.command(cls=_OneLineErrors)
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--bins", type=click.IntRange(1, 1000), default=20, show_default=True)
def stats(path, as_json, bins) -> None:
    """Items, hours, durations, rates, channels, disk size and errors of a folder or manifest."""
    import json

    from prep.stats import collect_stats, render_stats

    try:
        result = collect_stats(path, bins)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    click.echo(json.dumps(result, indent=2) if as_json else render_stats(result))


@main.command(cls=_OneLineErrors)
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--sources",
    type=click.Path(path_type=str),
    default=None,
    help="The SRC PATH was made from: also check the inputs did not change since.",
)
@_verbosity
def verify(path, sources, quiet, verbose) -> None:
    """Check every output in PATH against its manifest: present, readable, length, hash."""
    from prep.verify import verify as run_verify

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    try:
        report = run_verify(path, sources)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    for problem in report.problems:
        click.echo(problem)
    if not report.ok:
        log.warning(report.line())
        sys.exit(1)
    log.info(report.line())


@main.command(
    cls=_OneLineErrors,
    epilog="""\b
Examples:
  prep bench --quick                     check that the bench runs (not figures to act on)
  prep bench                             the figures: results.csv, report.md, plots
  prep bench --segment 2s --batch-sizes 16,32,64 --out bench-2s
  prep bench --src my-audio/ --out my-bench""",
)
@click.option(
    "--src",
    type=click.Path(exists=True, file_okay=False, path_type=str),
    default=None,
    help="Your own audio folder instead of the built-in demo corpus.",
)
@click.option("--out", type=click.Path(path_type=str), default="bench-results", show_default=True)
@click.option(
    "--quick",
    "mode",
    flag_value="quick",
    help="A tiny corpus, one repeat: a smoke test of the bench, not figures to act on.",
)
@click.option("--full", "mode", flag_value="full", help="Three repeats, more workers and batches.")
@click.option(
    "--segment",
    default="5s",
    show_default=True,
    help="Item length the shards, loaders and training steps use (0.1 s to 60 s).",
)
@click.option(
    "--batch-sizes",
    default=None,
    metavar="N[,N...]",
    help="Loader batch sizes to compare [quick: 8; default: 1,8,32; full: 1,8,32,64].",
)
@_jobs_option("Parallelism for both sides [all cores].")
@click.option("--device", type=_choice("auto", "cpu", "cuda"), default="auto", show_default=True)
@click.option("--cold", is_flag=True, help="Drop the files' cached pages before each timed run.")
@_verbosity
def bench(src, out, mode, segment, batch_sizes, jobs, device, cold, quiet, verbose) -> None:
    """Measure each step on this machine, side by side; write OUT/report.md.

    \b
    1. convert: prep convert against one ffmpeg per file; peak memory on a 2-hour file
    2. shard: each format's time and disk size
    3. loaders: items/s of every format by workers, threads, batch size and transport,
       against decoding the original files on the fly
    4. training steps: the share of each step spent waiting for data

    On a 2-core machine: --quick about 1.5 minutes; the default about 6 minutes, plus
    about 2.5 the first time, to generate the demo corpus under OUT (kept for reruns);
    --full about 18 minutes (estimated). It prints its own estimate when it starts.
    """
    from pathlib import Path

    from prep.bench.options import BenchOptions, parse_batch_sizes
    from prep.paths import check_out

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    try:
        if src:
            check_out(Path(out), Path(src))
        options = BenchOptions(
            out=Path(out),
            src=Path(src) if src else None,
            mode=mode or "default",
            jobs=jobs,
            device=device,
            cold=cold,
            segment=segment,
            batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes is not None else (),
        )
    except UsageError as exc:
        _fail(str(exc))
    from prep.bench.run import run_bench  # torch and matplotlib: only once the options hold

    report, summary = run_bench(options)
    click.echo(summary)
    click.echo(f"\nreport: {report}")


if __name__ == "__main__":  # pragma: no cover
    main()
