"""The ``prep`` command: option parsing only; the work is done by library functions."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Callable, Iterator

import click

from loaders.audio.sniff import AUDIO_EXTENSIONS
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
def _progress(command: str, verb: str, noun: str, quiet: bool, every: float) -> Iterator:
    """A progress line redrawn on a terminal, a log line every ``every`` s elsewhere
    (:class:`prep.progress.Progress`); nothing with -q."""
    if quiet:
        yield None
        return
    from prep.progress import Progress

    progress = Progress(command, verb, noun, terminal=sys.stderr.isatty(), every=every)
    with progress.shown():
        yield progress


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
    click.option(
        "-v",
        "--verbose",
        "verbose",
        is_flag=True,
        help="Per-file decisions: decoder chosen and why, parts, skips.",
    ),
]


def _verbosity(func: Callable) -> Callable:
    for option in reversed(verbosity_options):
        func = option(func)
    return func


class _Names(click.Choice):
    """A case-insensitive choice of the names a library module defines and checks against
    (``"prep.parallel:BACKENDS"``): one list per choice, never a second copy here. Read
    when help or a value needs it, so ``prep`` starts without importing the worker code."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__((), case_sensitive=False)

    @property
    def choices(self) -> tuple[str, ...]:
        module, name = self.source.split(":")
        return tuple(getattr(importlib.import_module(module), name))

    @choices.setter
    def choices(self, value) -> None:
        """click's ``__init__`` sets them; they are always read from the source instead."""

    def get_metavar(self, param, ctx=None) -> str:
        return f"[{'|'.join(self.choices)}]"  # as spelled, where click would casefold them

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}", param, ctx)


def _progress_every(func: Callable) -> Callable:
    return click.option(
        "--progress-every",
        type=click.FloatRange(min=0),
        default=30,
        show_default=True,
        metavar="SECONDS",
        help="Off a terminal, log progress every SECONDS (0: never).",
    )(func)


def _backend_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--backend",
            type=_Names("prep.parallel:BACKENDS"),
            default="local",
            show_default=True,
            help="local: this machine's cores; dask: a Dask cluster's workers.",
        ),
        click.option(
            "--scheduler",
            default=None,
            show_default="$DASK_SCHEDULER_ADDRESS",
            help="Dask scheduler address (tcp://HOST:PORT), with --backend dask.",
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence in full, wrapped: click would cut it at the width."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1 << 16)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  prep convert my-audio/ wav16/ -j 4
  prep shard wav16/ shards/ --segment 5s --format webdataset,hdf5
  prep verify shards/
  prep stats wav16/

Each command's options, defaults and examples: prep COMMAND --help""",
)
@click.version_option(package_name="audioprep", message="prep (%(package)s) %(version)s")
def main() -> None:
    """audioprep: convert, shard, load and benchmark audio for training."""


class _OneLineErrors(click.Command):
    """Bad options (a value out of range, an unknown choice, a missing argument) end in
    one ``error:`` line and exit status 2, like the checks the commands make themselves."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _fail(exc.format_message())


class _Sectioned(_OneLineErrors):
    """Options listed under headings (click has none): ``sections`` maps each heading to
    the names of its options; an option it does not name goes under "Other options",
    so none is ever left out of the help."""

    def __init__(self, *args, sections: dict[str, tuple[str, ...]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        heading_of = {name: title for title, names in self.sections.items() for name in names}
        help_opts = set(ctx.help_option_names)
        rows: dict[str, list[tuple[str, str]]] = {title: [] for title in self.sections}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or not isinstance(param, click.Option):
                continue
            title = heading_of.get(param.name, "Other options")
            if help_opts.issuperset(param.opts):  # last, as click lists it
                title = list(self.sections)[-1]
            rows.setdefault(title, []).append(record)
        # click sizes each list's first column to its own terms: pad them to one width
        # (at most click's 30) so the descriptions of every section start in one column
        width = min(
            30, max((len(term) for records in rows.values() for term, _ in records), default=0)
        )
        for title, records in rows.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl([(term.ljust(width), text) for term, text in records])


_RUN = ("overwrite", "jobs", "backend", "scheduler", "progress_every", "quiet", "verbose")
CONVERT_SECTIONS = {
    "Input": ("extensions", "min_duration", "max_duration"),
    "Output": ("to", "sample_rate", "channels"),
    "Decoding": ("decoder", "quality"),
    "Run": _RUN,
}


@main.command(
    cls=_Sectioned,
    sections=CONVERT_SECTIONS,
    short_help="Any audio to 16-bit mono WAV or FLAC at one sample rate.",
    epilog="""\b
Examples:
  prep convert my-audio/ wav16/ -j 4
  prep convert my-audio/ flac8k/ --to flac16 --sr 8000 --quality vhq
  prep convert my-audio/ wav16/ --ext m4a --min-duration 0.5 --channels first""",
)
@click.argument("src", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option(
    "--to",
    "to",
    type=_Names("prep.convert.options:TARGETS"),
    default="wav16",
    show_default=True,
    help="Output files: 16-bit PCM WAV or FLAC.",
)
@click.option(
    "--sr",
    "sample_rate",
    type=int,
    default=16000,
    show_default=True,
    help="Sample rate of the output files (Hz); every file is resampled to it.",
)
@click.option(
    "--channels",
    type=_Names("loaders.audio.dsp:CHANNEL_MODES"),
    default="mix",
    show_default=True,
    help="Mono from the average of all channels (mix) or channel 0 alone (first).",
)
@click.option(
    "--min-duration",
    type=float,
    default=None,
    show_default="none",
    help="Skip files shorter than this many seconds (listed in skipped.jsonl).",
)
@click.option(
    "--max-duration",
    type=float,
    default=None,
    show_default="none",
    help="Skip files longer than this many seconds (listed in skipped.jsonl).",
)
@click.option(
    "--decoder",
    type=_Names("loaders.audio.registry:DECODERS"),
    default="auto",
    show_default=True,
    help="auto: the fastest in-process decoder per codec, then ffmpeg or PyAV for the rest.",
)
@click.option(
    "--quality",
    type=_Names("loaders.audio.dsp:RESAMPLE_QUALITIES"),
    default="HQ",
    show_default=True,
    help="soxr resampling quality, from LQ (fastest) to VHQ (most exact).",
)
@click.option(
    "--ext",
    "extensions",
    multiple=True,
    show_default="none",
    help=f"Also pick up files ending in this, e.g. m4a (repeatable); always: "
    f"{' '.join(AUDIO_EXTENSIONS)}.",
)
@click.option("--overwrite", is_flag=True, help="Redo files that are already converted.")
@click.option("-j", "--jobs", type=int, default=0, help="Worker processes [all cores].")
@_backend_options
@_verbosity
@_progress_every
def convert(src, out, quiet, verbose, progress_every, **kwargs) -> None:
    """Convert audio under SRC (a folder or a .jsonl manifest) to 16-bit mono files in OUT.

    SRC may also be a Kaldi data dir (wav.scp) or a Lhotse cuts/recordings .jsonl(.gz):
    each utterance keeps its span, text and speaker."""
    from prep.convert import ConvertOptions
    from prep.convert import convert as run_convert

    _setup_logging(-1 if quiet else (1 if verbose else 0))
    kwargs["extensions"] = tuple(kwargs["extensions"])
    try:
        options = ConvertOptions(**kwargs)
        options.validate()  # paths are checked before the progress line is first drawn
        with _progress("convert", "converting", "files", quiet, progress_every) as progress:
            summary = run_convert(src, out, options, progress)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    _finish(summary.line(), summary.failed, out)


def _choice(*choices: str) -> click.Choice:
    return click.Choice(choices, case_sensitive=False)


def _mel_options(func: Callable) -> Callable:
    positive = click.IntRange(min=1)
    options = [
        click.option(
            "--n-mels",
            type=positive,
            default=80,
            show_default=True,
            help="Mel bands: the rows of each item's mel.",
        ),
        click.option(
            "--n-fft",
            type=positive,
            default=400,
            show_default=True,
            help="FFT window in samples (400 = 25 ms at 16 kHz).",
        ),
        click.option(
            "--hop-length",
            type=positive,
            default=160,
            show_default=True,
            help="Samples between mel frames (160 = 10 ms, 100 frames/s at 16 kHz).",
        ),
        click.option(
            "--f-min",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="Bottom of the mel band (Hz).",
        ),
        click.option(
            "--f-max",
            type=click.FloatRange(min=0.0, min_open=True),
            default=None,
            show_default="half of --sr",
            help="Top of the mel band (Hz).",
        ),
        click.option(
            "--log",
            "log_scale",
            type=_Names("prep.shard.options:LOG_SCALES"),
            default="natural",
            show_default=True,
            help="Log of the mel power: natural (ln) or db (10 log10).",
        ),
        click.option(
            "--mel-dtype",
            type=_Names("loaders.mel_storage:MEL_DTYPES"),
            default="float32",
            show_default=True,
            help="How mel is stored; uint8 is quantised per item, its range kept to undo it.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fbank_options(func: Callable) -> Callable:
    """``--features`` and Kaldi fbank's knobs (its defaults: ``compute-fbank-feats``'s)."""
    options = [
        click.option(
            "--features",
            type=_Names("loaders.mel_storage:FEATURES"),
            default="mel",
            show_default=True,
            help="What the mel folder (and the mel of the other formats) holds: log-mel, "
            "or Kaldi-compatible filterbanks (fbank, the --fbank-* options).",
        ),
        click.option(
            "--fbank-bins",
            type=click.IntRange(min=1),
            default=80,
            show_default=True,
            help="fbank: mel bins.",
        ),
        click.option(
            "--fbank-frame-length",
            type=click.FloatRange(min=0.0, min_open=True),
            default=25.0,
            show_default=True,
            help="fbank: frame length (ms).",
        ),
        click.option(
            "--fbank-frame-shift",
            type=click.FloatRange(min=0.0, min_open=True),
            default=10.0,
            show_default=True,
            help="fbank: frame shift (ms).",
        ),
        click.option(
            "--fbank-low-freq",
            type=click.FloatRange(min=0.0),
            default=20.0,
            show_default=True,
            help="fbank: bottom of the mel band (Hz).",
        ),
        click.option(
            "--fbank-high-freq",
            type=float,
            default=0.0,
            show_default=True,
            help="fbank: top of the band (Hz); 0 is Nyquist, below 0 that far under it.",
        ),
        click.option(
            "--fbank-dither",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="fbank: dither (Kaldi's is 1.0); seeded per item, so runs repeat.",
        ),
        click.option(
            "--fbank-window",
            type=_Names("loaders.mel_storage:FBANK_WINDOWS"),
            default="povey",
            show_default=True,
            help="fbank: window type.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _ms_samples(option: str, ms: float, sample_rate: int) -> int:
    """Milliseconds as a whole number of samples at ``sample_rate`` (else one error line)."""
    samples = ms * sample_rate / 1000.0
    if abs(samples - round(samples)) > 1e-6:
        _fail(f"{option} {ms:g} ms is not a whole number of samples at --sr {sample_rate}")
    return round(samples)


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

    return f"Formats to write, comma-separated: {', '.join(writer_names())}."


def _jobs_option(help_text: str) -> Callable:
    return click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, help=help_text)


SHARD_SECTIONS = {
    "Input and output": ("formats", "sample_rate"),
    "Segmenting": ("segment", "hop", "last", "min_last"),
    "Features (mel)": ("n_mels", "n_fft", "hop_length", "f_min", "f_max", "log_scale", "mel_dtype"),
    "Features (fbank)": (
        "features",
        "fbank_bins",
        "fbank_frame_length",
        "fbank_frame_shift",
        "fbank_low_freq",
        "fbank_high_freq",
        "fbank_dither",
        "fbank_window",
    ),
    "WebDataset": ("shard_size", "shard_bytes", "shuffle_seed", "codec"),
    "Hugging Face and NeMo": ("hf_split", "nemo_num_shards", "nemo_world_size"),
    "HDF5": ("hdf5_compression",),
    "Run": _RUN,
}


@main.command(
    cls=_Sectioned,
    sections=SHARD_SECTIONS,
    short_help="Cut audio into segments, mel, WebDataset, HDF5 or memmap.",
    epilog="""\b
Examples:
  prep shard wav16/ shards/ --segment 5s --format webdataset,hdf5
  prep shard wav16/ mels/ --format mel --n-mels 64 --hop-length 320
  prep shard my-audio/ clips/ --segment 2s --hop 1s --last drop --format memmap""",
)
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
@click.option(
    "--segment",
    default=None,
    show_default="whole files",
    help="Item length: 5s, 2.5s, 500ms or 80000samples.",
)
@click.option(
    "--hop",
    default=None,
    show_default="--segment",
    help="Distance between segment starts, same units; shorter overlaps.",
)
@click.option(
    "--last",
    type=_Names("prep.segmenting:LAST_POLICIES"),
    default="pad",
    show_default=True,
    help="A tail shorter than --segment: zero-padded (its length kept), dropped, or kept short.",
)
@click.option(
    "--min-last",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Drop a tail shorter than this fraction of a segment, even with pad.",
)
@click.option(
    "--sr",
    "sample_rate",
    type=click.IntRange(1000, 384000),
    default=16000,
    show_default=True,
    help="Sample rate of the items (Hz); SRC audio at another rate is resampled.",
)
@_mel_options
@_fbank_options
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=None,
    show_default="from --shard-bytes",
    help="Items per shard; with --shard-bytes, the smaller count wins.",
)
@click.option(
    "--shard-bytes",
    type=_ByteSize(),
    default=None,
    show_default="256MB",
    help="Bytes per shard (256MB, 1G, 1000000), over the items' average size.",
)
@click.option(
    "--shuffle-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the item order across shards: the same seed, the same shards.",
)
@click.option(
    "--codec",
    type=_Names("prep.writers.webdataset:CODECS"),
    default="wav",
    show_default=True,
    help="How the audio is stored in the shards.",
)
@click.option(
    "--hdf5-compression",
    type=_Names("prep.writers.hdf5:HDF5_COMPRESSIONS"),
    default="none",
    show_default=True,
    help="Compression of the HDF5 datasets (lzf: fast; gzip: smaller).",
)
@click.option(
    "--hf-split",
    default="train",
    show_default=True,
    help="hf: the split the Parquet files are named for (load_dataset's split).",
)
@click.option(
    "--nemo-num-shards",
    type=click.IntRange(min=1),
    default=None,
    show_default="from --shard-size/--shard-bytes",
    help="nemo_tarred: tar shards (raised to a multiple of --nemo-world-size).",
)
@click.option(
    "--nemo-world-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="nemo_tarred: GPUs NeMo trains on; the shard count is a multiple of it.",
)
@click.option("--overwrite", is_flag=True, help="Rebuild formats that are already complete.")
@_jobs_option("Worker processes [all cores].")
@_backend_options
@_verbosity
@_progress_every
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
    fbank_bins,
    fbank_frame_length,
    fbank_frame_shift,
    fbank_low_freq,
    fbank_high_freq,
    fbank_dither,
    fbank_window,
    quiet,
    verbose,
    progress_every,
    **kwargs,
) -> None:
    """Cut SRC (a prep convert folder, a manifest or any audio) into training formats in OUT.

    SRC may be a prep convert folder, its manifest.jsonl, any folder of audio, a
    manifest of audio, a Kaldi data dir or a Lhotse manifest; audio not yet at --sr is
    decoded and resampled on the way. Each format goes to its own subfolder of OUT, with a
    manifest.jsonl and a format.json.
    """
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
        fbank={
            "n_mels": fbank_bins,
            "win_length": _ms_samples("--fbank-frame-length", fbank_frame_length, sample_rate),
            "hop_length": _ms_samples("--fbank-frame-shift", fbank_frame_shift, sample_rate),
            "f_min": fbank_low_freq,
            "f_max": fbank_high_freq,
            "dither": fbank_dither,
            "window": fbank_window,
        },
        **kwargs,
    )
    try:
        with _progress("shard", "sharding", "sources", quiet, progress_every) as progress:
            summary = run_shard(src, out, options, progress)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    for error in summary.errors:  # as convert reports each failed file
        log.error("error: %s: %s", error["source"], error["reason"])
    _finish(summary.line(), summary.failed, out)


@main.command(
    cls=_OneLineErrors,
    short_help="Items, hours, durations and errors of a folder or manifest.",
    epilog="""\b
Examples:
  prep stats wav16/
  prep stats wav16/manifest.jsonl --json --bins 50""",
)
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--bins",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Bars of the duration histogram.",
)
def stats(path, as_json, bins) -> None:
    """Items, hours, durations, rates, channels, disk size and errors of a folder or manifest."""
    import json

    from prep.stats import collect_stats, render_stats

    try:
        result = collect_stats(path, bins)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    click.echo(json.dumps(result, indent=2) if as_json else render_stats(result))


@main.command(
    cls=_OneLineErrors,
    short_help="Check outputs against their manifests: present, length, hash.",
    epilog="""\b
Examples:
  prep verify shards/
  prep verify shards/webdataset
  prep verify wav16/ --sources my-audio/""",
)
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--sources",
    type=click.Path(path_type=str),
    default=None,
    show_default="not checked",
    help="The SRC PATH was made from: also check the inputs did not change since.",
)
@_verbosity
def verify(path, sources, quiet, verbose) -> None:
    """Check every output in PATH against its manifest: present, readable, length, hash.

    PATH is a prep convert folder, a prep shard OUT, or one format folder in it.
    """
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
@click.option(
    "--tensorboard",
    type=click.Path(path_type=str),
    default=None,
    metavar="DIR",
    help="Also write results.csv as TensorBoard scalars in DIR (tensorboard --logdir DIR).",
)
@_verbosity
def bench(
    src, out, mode, segment, batch_sizes, jobs, device, cold, tensorboard, quiet, verbose
) -> None:
    """Measure each step on this machine, side by side; write OUT/report.md.

    \b
    1. convert: prep convert against one ffmpeg per file; peak memory on a
       2-hour file; decoding alone, in process against ffmpeg and GStreamer pipes
    2. shard: each format's time and disk size
    3. loaders: items/s of every format (tensordict too) by workers, threads,
       batch size and transport, against decoding the originals on the fly;
       DALI at 1 thread and one per core; Lhotse's and datasets' own loaders
       with no workers and one per core, for comparison
    4. training steps: the share of each step spent waiting for data, fed by
       each format, the fastest DALI pipeline and DALI's log-mel

    On a 2-core machine: --quick about 1.5 minutes; the default about 6 minutes, plus
    about 2 the first time, to generate the demo corpus under OUT (kept for reruns);
    --full about 20 minutes (estimated). It prints its own estimate when it starts.
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
            tensorboard=Path(tensorboard) if tensorboard else None,
        )
    except UsageError as exc:
        _fail(str(exc))
    from prep.bench.run import run_bench  # torch and matplotlib: only once the options hold

    report, summary = run_bench(options)
    click.echo(summary)
    click.echo(f"\nreport: {report}")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="prep")
