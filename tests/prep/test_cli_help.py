"""``prep COMMAND --help`` is the manual: every option says what it does and its default,
every choice is listed, every command has examples that run, and nothing is cut short."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex

import click
import pytest
from click.testing import CliRunner
from helpers import make_file, run_prep

from prep.cli import main

DOCUMENTED = ("convert", "shard", "stats", "verify")


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def _options(name: str) -> list[click.Option]:
    return [p for p in main.commands[name].params if isinstance(p, click.Option)]


def _record(name: str, option: click.Option) -> str:
    """The option's lines in its command's help, as click writes them."""
    with click.Context(main.commands[name], info_name=name, parent=click.Context(main)) as ctx:
        return " ".join(option.get_help_record(ctx))


def _examples(help_text: str) -> list[list[str]]:
    """The ``prep ...`` lines of a help text, as argument lists without ``prep``."""
    lines = [line.strip() for line in help_text.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("prep ")]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_option_says_what_it_does_and_its_default(name):
    text = _help(name)
    for option in _options(name):
        record = _record(name, option)
        assert option.help and option.help.strip(), f"{name} {option.opts} has no help"
        assert option.opts[-1] in text
        if option.is_flag or option.count:
            continue  # off unless given
        shown = "[default: " in record or re.search(r"\[[^\]]+\]", option.help)
        assert shown, f"prep {name} {option.opts[-1]} shows no default: {record!r}"


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_choice_is_listed_in_the_help(name):
    text = _help(name)
    choices = [o for o in _options(name) if isinstance(o.type, click.Choice)]
    assert choices or name in ("stats", "verify")
    for option in choices:
        assert option.type.choices, option.opts
        for choice in option.type.choices:
            assert choice in text, f"prep {name} {option.opts[-1]}: {choice!r} not in help"
        assert not option.type.case_sensitive, option.opts


def test_the_choices_come_from_the_lists_the_library_checks():
    from loaders.audio.dsp import CHANNEL_MODES, RESAMPLE_QUALITIES
    from loaders.mel_storage import MEL_DTYPES
    from prep.convert.options import TARGETS
    from prep.parallel import BACKENDS
    from prep.segmenting import LAST_POLICIES
    from prep.shard.options import LOG_SCALES
    from prep.writers.hdf5 import HDF5_COMPRESSIONS
    from prep.writers.webdataset import CODECS

    def choices(command, option):
        (param,) = [p for p in _options(command) if p.name == option]
        return tuple(param.type.choices)

    assert choices("convert", "to") == tuple(TARGETS)
    assert choices("convert", "channels") == CHANNEL_MODES
    assert choices("convert", "quality") == RESAMPLE_QUALITIES
    assert choices("convert", "backend") == choices("shard", "backend") == BACKENDS
    assert choices("shard", "last") == LAST_POLICIES
    assert choices("shard", "log_scale") == LOG_SCALES
    assert choices("shard", "mel_dtype") == MEL_DTYPES
    assert choices("shard", "codec") == CODECS
    assert choices("shard", "hdf5_compression") == HDF5_COMPRESSIONS


def test_shard_options_are_grouped_under_headings_and_none_is_left_out():
    text = _help("shard")
    headings = [line[:-1] for line in text.splitlines() if re.fullmatch(r"\S.*:", line)]
    expected = ("Input and output", "Segmenting", "Features (mel)", "WebDataset", "HDF5", "Run")
    assert [h for h in headings if h in expected] == list(expected), headings
    assert "Options" not in headings and "Other options" not in headings
    for option in _options("shard"):
        assert text.count(f"  {option.opts[0]}") >= 1, option.opts
    assert headings.index("Segmenting") < headings.index("Features (mel)") < headings.index("Run")
    run = text.split("Run:")[1]
    for opt in ("--jobs", "--overwrite", "--backend", "--scheduler", "--quiet", "--verbose"):
        assert opt in run


def test_an_option_not_placed_under_a_heading_still_shows():
    command = main.commands["shard"]
    extra = click.Option(["--not-placed"], help="Placed nowhere.")
    command.params.append(extra)
    try:
        text = _help("shard")
    finally:
        command.params.remove(extra)
    assert "Other options:" in text and "--not-placed" in text.split("Other options:")[1]


@pytest.mark.parametrize("name", ["", *DOCUMENTED])
def test_every_command_has_examples_that_parse(name):
    args = [name] if name else []
    examples = _examples(_help(*args))
    assert examples, f"prep {name} --help has no example"
    for example in examples:
        command = main.commands[example[0]]
        with command.make_context(example[0], example[1:], parent=click.Context(main)):
            pass  # an unknown option or a bad value raises click.UsageError


@pytest.mark.parametrize("name", ["convert", "shard"])
def test_convert_and_shard_examples_run(tmp_path, name):
    """Each example on a tiny folder of audio: its options together make a valid run."""
    make_file(tmp_path / "audio" / "a.mp3", seconds=2.5)
    for n, example in enumerate(_examples(_help(name))):
        command = main.commands[name]
        with command.make_context(name, example[1:], parent=click.Context(main)) as ctx:
            src, out = ctx.params["src"], ctx.params["out"]
        paths = {src: str(tmp_path / "audio"), out: str(tmp_path / f"out{n}")}
        args = [paths.get(arg, arg) for arg in example]
        proc = run_prep(*args)
        assert proc.returncode == 0, f"prep {shlex.join(example)}:\n{proc.stderr}"


def test_choices_take_any_case(src, out):
    make_file(src / "a.wav", seconds=0.5)
    proc = run_prep("convert", str(src), str(out), "--quality", "hq", "--to", "FLAC16", "-q")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.rglob("*.flac")] == ["a.flac"]
    command = main.commands["convert"]
    args = ["--quality", "hq", "--channels", "FIRST", "a", "b"]
    with command.make_context("convert", args, parent=click.Context(main)) as ctx:
        assert (ctx.params["quality"], ctx.params["channels"]) == ("HQ", "first")


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["--to", "mp3"], ("wav16", "flac16")),
        (["--quality", "xx"], ("LQ", "MQ", "HQ", "VHQ")),
        (["--channels", "left"], ("mix", "first")),
        (["--backend", "spark"], ("local", "dask")),
    ],
)
def test_a_bad_choice_is_one_error_line_listing_the_choices(src, out, args, choices):
    make_file(src / "a.wav", seconds=0.5)
    proc = run_prep("convert", *args, str(src), str(out))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert all(choice in proc.stderr for choice in choices), proc.stderr
    assert not out.exists()


def test_shard_bad_choices_are_one_error_line(tmp_path):
    for args in (["--backend", "spark"], ["--codec", "mp3"], ["--hdf5-compression", "zstd"]):
        proc = run_prep("shard", str(tmp_path), str(tmp_path / "o"), *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and repr(args[1]) in proc.stderr


def test_version_is_the_installed_package_version():
    proc = run_prep("--version", check=True)
    assert proc.stdout == f"prep (audioprep) {importlib.metadata.version('audioprep')}\n"


def test_the_command_list_cuts_no_description():
    proc = run_prep("--help", check=True, env={**os.environ, "COLUMNS": "80"})
    commands = proc.stdout.split("Commands:")[1]
    assert "..." not in commands
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    for name in main.commands:
        assert f"  {name} " in commands


def test_shard_says_what_src_may_be():
    text = " ".join(_help("shard").split())
    assert "Usage:" in text and "SRC OUT" in text
    for kind in ("prep convert folder", "manifest", "folder of audio"):
        assert kind in text
