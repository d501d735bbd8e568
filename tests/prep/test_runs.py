"""Whole runs under awkward conditions: utterance manifests (several lines per file), two
runs into one OUT, a killed run's workers, a full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, ffmpeg, make_file, read_int16, run_prep

from loaders import open_dataset
from loaders.converted import ConvertedDataset

SR = 16000
UTTERANCES = [  # (offset, duration, text) of one 12 s recording, NeMo style
    (0.0, 3.0, "one"),
    (4.0, 3.0, "two"),
    (8.0, 4.0, "three"),
]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _utterance_manifest(src: Path, extra: list[dict] = ()) -> Path:
    make_file(src / "long.wav", seconds=12.0, sr=SR, channels=1)
    make_file(src / "short.wav", seconds=2.0, sr=SR, channels=1)
    lines = [
        {"audio_filepath": "long.wav", "offset": o, "duration": d, "text": t, "speaker": f"s{n}"}
        for n, (o, d, t) in enumerate(UTTERANCES)
    ]
    lines += [{"audio_filepath": "short.wav", "duration": 2.0, "text": "whole"}, *extra]
    manifest = src / "train.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_convert_keeps_one_entry_per_utterance_line(src, out):
    manifest = _utterance_manifest(src)
    run_prep("convert", str(manifest), str(out), "-j", "2", check=True)
    entries = _jsonl(out / "manifest.jsonl")
    long = [e for e in entries if e["source"] == "long.wav"]
    assert [(e["offset"], e["duration"], e["text"]) for e in long] == UTTERANCES
    assert [e["speaker"] for e in long] == ["s0", "s1", "s2"]
    assert all(e["file_num_samples"] == 12 * SR for e in long)
    assert [e["num_samples"] for e in long] == [3 * SR, 3 * SR, 4 * SR]
    (short,) = [e for e in entries if e["source"] == "short.wav"]
    assert short["text"] == "whole" and "file_num_samples" not in short
    assert sorted(p.name for p in out.glob("*.wav")) == ["long.wav", "short.wav"]  # once each

    # The loader reads each utterance's span, not the whole file.
    whole, _ = read_int16(out / "long.wav")
    dataset = ConvertedDataset(out)
    items = [dataset[i] for i in range(len(dataset))]
    assert len({item["key"] for item in items}) == len(items) == 4
    for item, entry in zip(items, entries, strict=True):
        if entry["source"] == "long.wav":
            start = round(entry["offset"] * SR)
            expected = whole[start : start + entry["num_samples"]]
            assert np.array_equal(np.round(item["audio"].numpy() * 32768), expected)
            assert item["text"] == entry["text"]

    # verify reads each file once, checks each span, and names a file no entry lists.
    assert run_prep("verify", str(out)).returncode == 0
    shutil.copy(out / "short.wav", out / "stray.wav")
    proc = run_prep("verify", str(out))
    assert proc.returncode == 1 and "stray.wav: not listed in manifest.jsonl" in proc.stdout
    (out / "stray.wav").unlink()

    # A rerun skips the work and writes the same manifest.
    before = (out / "manifest.jsonl").read_bytes()
    rerun = run_prep("convert", str(manifest), str(out), check=True)
    assert "already done 2" in rerun.stderr
    assert (out / "manifest.jsonl").read_bytes() == before


def test_a_line_outside_its_file_is_an_error_and_the_others_still_count(src, out):
    bad = [
        {"audio_filepath": "long.wav", "offset": 11.0, "duration": 5.0, "text": "past the end"},
        {"audio_filepath": "long.wav", "offset": -1.0, "duration": 1.0, "text": "negative"},
        {"audio_filepath": "long.wav", "offset": 1.0, "duration": "x", "text": "not a number"},
        {"audio_filepath": "long.wav", "offset": 4.0, "duration": 3.0, "text": "repeat of two"},
    ]
    manifest = _utterance_manifest(src, bad)
    proc = run_prep("convert", str(manifest), str(out))
    assert proc.returncode == 1, proc.stderr
    errors = _jsonl(out / "errors.jsonl")
    assert [e["line"] for e in errors] == [5, 6, 7, 8]
    assert "ends after the file" in errors[0]["reason"]
    assert "names the audio of line 2" in errors[3]["reason"]
    assert len(_jsonl(out / "manifest.jsonl")) == 4
    assert "Traceback" not in proc.stderr


def test_duration_filters_apply_to_each_utterance(src, out):
    manifest = _utterance_manifest(src)
    run_prep("convert", str(manifest), str(out), "--max-duration", "3.5", check=True)
    texts = [e["text"] for e in _jsonl(out / "manifest.jsonl")]
    assert texts == ["one", "two", "whole"]
    (skip,) = _jsonl(out / "skipped.jsonl")
    assert skip["source"] == "long.wav" and skip["line"] == 3


def test_two_files_with_one_relative_name_stop_the_run(src, out, tmp_path):
    outside = make_file(tmp_path / "x" / "a.wav", seconds=1.0, sr=SR, channels=1)
    # A path outside the manifest's folder is named by its absolute path: a file inside
    # the folder at that relative path would take the same name.
    inside_rel = outside.resolve().relative_to("/").as_posix()
    make_file(src / inside_rel, seconds=1.0, sr=SR, channels=1)
    manifest = src / "m.jsonl"
    lines = [{"audio_filepath": inside_rel}, {"audio_filepath": str(outside)}]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = run_prep("convert", str(manifest), str(out))
    assert proc.returncode == 2 and "same relative name" in proc.stderr, proc.stderr


@pytest.mark.parametrize("from_manifest", [False, True], ids=["converted", "nemo-manifest"])
def test_shard_cuts_items_from_each_utterance_only(src, out, tmp_path, from_manifest):
    manifest = _utterance_manifest(src)
    conv = tmp_path / "conv"
    run_prep("convert", str(manifest), str(conv), check=True)
    shard_src = manifest if from_manifest else conv
    shards = tmp_path / "shards"
    formats = "segments,webdataset,hdf5"
    run_prep("shard", str(shard_src), str(shards), "--format", formats, "-j", "2", check=True)
    whole, _ = read_int16(conv / "long.wav")
    for name in formats.split(","):
        entries = _jsonl(shards / name / "manifest.jsonl")
        assert len(entries) == 4 and len({e["key"] for e in entries}) == 4, name
        long = [e for e in entries if e["source"] == "long.wav"]
        assert [(e["offset"], e["duration"], e.get("text")) for e in long] == UTTERANCES
        # Every format holds each utterance's own samples (the staged rows of utterances
        # of one file, spread over batches, once overwrote each other).
        dataset = open_dataset(shards / name, dtype="int16")
        items = {
            item["key"]: item
            for item in (
                dataset if name == "webdataset" else (dataset[i] for i in range(len(dataset)))
            )
        }
        for entry in long:
            start = round(entry["offset"] * SR)
            expected = whole[start : start + entry["num_samples"]]
            got = items[entry["key"]]["audio"].numpy()[: entry["num_samples"]]
            assert np.array_equal(got, expected), (name, entry["key"])
    with tarfile.open(next((shards / "webdataset").glob("*.tar"))) as tar:
        names = tar.getnames()
    assert len(names) == len(set(names))


def _wait_for(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _start_prep(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "prep.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _children(pid: int) -> list[int]:
    """Worker processes of ``pid`` (forked copies of it; joblib's resource tracker, which
    writes nothing into OUT, is left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"prep.cli" in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def busy_src(tmp_path_factory) -> Path:
    """Enough clips to keep two workers busy for a few seconds."""
    folder = tmp_path_factory.mktemp("busy")
    for n in range(60):
        make_file(folder / f"clip{n:02d}.flac", seconds=6.0, sr=44100, channels=2)
    return folder


def test_a_second_run_into_the_same_out_is_refused_while_the_first_holds_it(src, out):
    make_file(src / "a.wav", seconds=1.0)
    holder = subprocess.Popen(  # a run in progress: holds OUT until it is killed
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from prep.runlock import locked_out\n"
            "with locked_out(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        for command in ("convert", "shard"):
            second = run_prep(command, str(src), str(out))
            assert second.returncode == 2, second.stderr
            assert f"in use by another prep run (pid {holder.pid})" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
        assert not (out / "manifest.jsonl").exists()
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()
    run_prep("convert", str(src), str(out), check=True)
    assert len(_jsonl(out / "manifest.jsonl")) == 1


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie writes nothing


@pytest.fixture(scope="module")
def two_long_files(tmp_path_factory) -> Path:
    """Two 10-minute mp3 files: each keeps a worker busy for about a second."""
    folder = tmp_path_factory.mktemp("long")
    sine = "sine=frequency=440:duration=600:sample_rate=22050"
    ffmpeg("-f", "lavfi", "-i", sine, "-ac", "1", "-b:a", "32k", str(folder / "a.mp3"))
    shutil.copy(folder / "a.mp3", folder / "b.mp3")
    return folder


@pytest.mark.slow
def test_a_killed_run_takes_its_workers_along_and_does_not_block_the_next(two_long_files, out):
    run = _start_prep("convert", str(two_long_files), str(out), "-j", "2", "--quality", "VHQ")
    _wait_for(lambda: len(_children(run.pid)) >= 2)
    time.sleep(0.2)  # both workers are inside a file now
    workers = _children(run.pid)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    # Without being told, a worker would finish its file (about a second) and write it.
    _wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=0.25)
    assert not list(out.glob("*.wav"))
    rerun = run_prep("convert", str(two_long_files), str(out), "-j", "2", check=True)
    assert "converted 2" in rerun.stderr
    assert not list(out.rglob("*.partial"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A real file system of 200 KB (tmpfs): writes fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
    )
    assert done.returncode == 0, f"this test mounts a tmpfs (as root): {done.stderr!r}"
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("command", ["convert", "shard"])
@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_naming_the_file(busy_src, tiny_disk, command):
    extra = ["--format", "segments,webdataset", "--segment", "1s"] if command == "shard" else []
    proc = run_prep(command, str(busy_src), str(tiny_disk / "out"), "-j", "2", *extra)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "No space left on device" in proc.stderr
    assert str(tiny_disk / "out") in proc.stderr, last
    assert not list((tiny_disk / "out").rglob("*.partial"))
