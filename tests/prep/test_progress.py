"""Progress and logs: the progress line on a terminal, periodic log lines off one, ``-v``
per-file notes, and native library chatter kept off the terminal."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, make_file, run_prep

from prep.progress import Progress

CHATTER = ("Illegal Audio-MPEG-Header", "resync", "Note:", "Warning:", "Xing")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("convert: ")]


def test_logs_one_line_every_n_seconds_and_no_more(caplog):
    clock = FakeClock()
    progress = Progress("convert", "converting", every=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="prep"):
        progress.start(300)
        for _ in range(10):  # ten files in 20 s: no line yet
            clock.now += 2
            progress.advance(1, 3600 * 0.14, 0)
        assert progress_lines(caplog) == []
        clock.now += 10  # 30 s in
        progress.advance(110, 0.0, 2)
        progress.tick()
        progress.advance(0, 0.0, 0)
        first = "convert: 120/300 files, 1.4 h, 2 failed, 0:00:30 elapsed"
        assert progress_lines(caplog) == [first]
        clock.now += 29.9
        progress.tick()
        assert len(progress_lines(caplog)) == 1
        clock.now += 0.1  # nothing finished, but 30 s went by: a line shows life
        progress.tick()
        assert len(progress_lines(caplog)) == 2
        progress.advance(180)
        progress.finish()  # the last state, after periodic lines
    assert progress_lines(caplog)[-1] == "convert: 300/300 files, 1.4 h, 2 failed, 0:01:00 elapsed"


def test_a_short_run_logs_nothing_and_zero_turns_it_off(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="prep"):
        short = Progress("convert", "converting", every=30, clock=clock)
        short.start(3)
        clock.now += 5
        short.advance(3)
        short.finish()  # the summary line says it all
        off = Progress("convert", "converting", every=0, clock=clock)
        off.start(3)
        for _ in range(100):
            clock.now += 3600
            off.advance(0)
        off.finish()
    assert progress_lines(caplog) == []


def test_terminal_line_shows_counts_bar_and_time_left():
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress("convert", "converting", terminal=True, clock=clock, stream=stream)
    progress.start(300)
    clock.now += 8
    progress.advance(120, 1.4 * 3600, 2)
    assert progress.terminal_line() == (
        "converting  120/300 files  1.4 h  2 failed  [########            ]  40%  0:00:12 left"
    )
    drawn = stream.getvalue().split("\r")[-1]  # an 80-column terminal: a narrower bar
    assert drawn == (
        "converting  120/300 files  1.4 h  2 failed  [#####        ]  40%  0:00:12 left\x1b[K"
    )
    progress.finish()
    assert stream.getvalue().endswith("\n")


def run_on_terminal(*args: str) -> tuple[int, str]:
    """``prep ARGS`` with stderr on a real pseudo-terminal; its exit status and what the
    terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prep.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=REPO,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Three short files and one that is not audio."""
    src = tmp_path_factory.mktemp("small")
    for name in ("a.flac", "b.mp3", "c.wav"):
        make_file(src / name, 1.0)
    (src / "bad.mp3").write_bytes(b"not audio at all" * 64)
    return src


def test_convert_and_shard_show_progress_on_a_terminal(small_set, tmp_path):
    code, seen = run_on_terminal("convert", str(small_set), str(tmp_path / "wav"))
    assert code == 1
    assert re.search(r"converting\s+4/4 files\s+3 s\s+1 failed\s+\[#+\]\s+100%", seen), seen
    assert "error: bad.mp3:" in seen and "converted 3" in seen

    code, seen = run_on_terminal("shard", str(small_set), str(tmp_path / "shards"))
    assert code == 1
    assert re.search(r"sharding\s+4/4 sources\s+3 s\s+1 failed\s+\[#+\]\s+100%", seen), seen


def slow_set(root: Path) -> Path:
    for n in range(3):
        make_file(root / f"long{n}.ogg", 20.0)
    return root


def test_off_a_terminal_progress_is_logged_every_n_seconds_and_never_with_q(tmp_path):
    src = slow_set(tmp_path / "src")
    every = ("--progress-every", "0.01", "-j", "1")  # each 20 s file takes longer
    proc = run_prep("convert", str(src), str(tmp_path / "a"), *every, check=True)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("convert: ")]
    assert lines, proc.stderr
    line = r"convert: \d/3 files, [\d.]+ (s|min), 0 failed, 0:00:\d\d elapsed"
    assert all(re.fullmatch(line, ln) for ln in lines), lines
    assert lines[-1].startswith("convert: 3/3 files, 1.0 min, 0 failed")

    proc = run_prep("shard", str(src), str(tmp_path / "s"), *every, "--format", "mel", check=True)
    assert "shard: 3/3 sources, 1.0 min, 0 failed" in proc.stderr, proc.stderr

    proc = run_prep("convert", str(src), str(tmp_path / "q"), *every, "-q", check=True)
    assert proc.stderr == ""
    proc = run_prep("convert", str(src), str(tmp_path / "z"), "--progress-every", "0", "-j", "1")
    assert "convert: " not in proc.stderr


def test_verbose_names_the_decoder_parts_and_reruns(tmp_path):
    src = tmp_path / "src"
    make_file(src / "long.flac", 130.0, sr=16000, channels=1)  # over two 60 s parts
    make_file(src / "short.mp3", 1.0)
    make_file(src / "tiny.wav", 0.5)
    out = tmp_path / "out"
    proc = run_prep("convert", str(src), str(out), "-v", "--min-duration", "0.8", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "long.flac: decoder soundfile, split into 2 parts over the workers" in lines
    assert "short.mp3: decoder soundfile" in lines
    assert any(ln.startswith("skipped: tiny.wav: duration 0.50 s is below") for ln in lines)

    (src / "short.mp3").touch()  # newer mtime: converted again
    proc = run_prep("convert", str(src), str(out), "-v", "--min-duration", "0.8", "-j", "1")
    lines = proc.stderr.splitlines()
    assert any(re.fullmatch(r"long\.flac: already done \(.+unchanged\)", ln) for ln in lines)
    assert "short.mp3: converting again: its source changed (size or modification time)" in lines
    assert "short.mp3: decoder soundfile" in lines

    proc = run_prep("shard", str(out), str(tmp_path / "shards"), "-v", "--segment", "5s")
    assert "long.flac: read as is (mono 16-bit at the rate); 26 items" in proc.stderr.splitlines()


def chatty_mp3(path: Path) -> Path:
    """A real mp3 with bytes spliced in between its frames: mpg123 (inside libsndfile)
    writes "Note: Illegal Audio-MPEG-Header" and its resync notes straight to fd 2."""
    data = make_file(path, 3.0).read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + b"garbage!" * 40 + data[middle:])
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])  # in this process, and in worker processes
def test_native_chatter_never_reaches_the_terminal_and_is_a_debug_line(tmp_path, jobs):
    src = tmp_path / "src"
    chatty_mp3(src / "chatty.mp3")
    make_file(src / "clean.flac", 1.0)
    for args in (("convert", str(src), str(tmp_path / f"c{jobs}")),
                 ("shard", str(src), str(tmp_path / f"s{jobs}"))):  # fmt: skip
        quiet = run_prep(*args, "-j", jobs, "--overwrite")
        assert not any(word in quiet.stderr for word in CHATTER), quiet.stderr
        verbose = run_prep(*args, "-j", jobs, "--overwrite", "-v")
        chatter = [ln for ln in verbose.stderr.splitlines() if "Illegal Audio-MPEG-Header" in ln]
        assert len(chatter) == 1, verbose.stderr
        assert re.match(r"chatty\.mp3: decoder soundfile[^;]*; native stderr: ", chatter[0])
        assert not any("native stderr" in ln for ln in verbose.stderr.splitlines()
                       if ln.startswith("clean.flac"))  # fmt: skip


def test_stats_keeps_native_chatter_off_the_terminal(tmp_path):
    chatty_mp3(tmp_path / "src" / "chatty.mp3")
    proc = run_prep("stats", str(tmp_path / "src"), check=True)
    assert not any(word in proc.stderr for word in CHATTER), proc.stderr
