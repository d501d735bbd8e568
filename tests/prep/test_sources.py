"""Finding sources: every folder, file and manifest line that is not converted is named.

A hole in a run (a folder or file that vanished without a line) is silent wrong data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from helpers import REPO, make_file, run_prep, sine

from manifests import partial_name, read_manifest, remove_partials
from manifests.atomic import NAME_MAX
from prep.sources import discover

TIMEOUT = 120
"""A run that hangs (a FIFO read by a decoder) fails the test instead of the suite."""


def _without_root_powers(*args: str) -> subprocess.CompletedProcess:
    """``prep ARGS`` as root without the capabilities that read any file or folder."""
    command = [sys.executable, "-m", "prep.cli", *args]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT, check=False
    )


def _outcomes(out: Path) -> tuple[set, dict, dict]:
    converted = {e["source"] for e in read_manifest(out / "manifest.jsonl")}
    errors = {e["source"]: e["reason"] for e in read_manifest(out / "errors.jsonl")}
    skipped = {e["source"]: e["reason"] for e in read_manifest(out / "skipped.jsonl")}
    return converted, errors, skipped


def _shard_errors(src: Path, tmp_path: Path) -> dict:
    """What ``prep shard`` of SRC reports, by source: it must fail in lines, not a traceback."""
    shard = run_prep("shard", str(src), str(tmp_path / "sh"), "-j", "1", timeout=TIMEOUT)
    assert shard.returncode == 1 and "Traceback" not in shard.stderr, shard.stderr
    return {e["source"]: e["reason"] for e in read_manifest(tmp_path / "sh" / "errors.jsonl")}


def test_an_unreadable_folder_is_an_error_in_convert_and_shard(src, tmp_path):
    make_file(src / "ok.wav")
    make_file(src / "locked" / "inside.wav")
    os.chmod(src / "locked", 0o000)
    try:
        proc = _without_root_powers("convert", str(src), str(tmp_path / "out"), "-j", "1")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        converted, errors, _ = _outcomes(tmp_path / "out")
        assert converted == {"ok.wav"}
        assert errors == {"locked": "folder cannot be read (permission denied)"}
        assert "error: locked: folder cannot be read" in proc.stderr

        shard = _without_root_powers("shard", str(src), str(tmp_path / "sh"), "-j", "1")
        assert shard.returncode == 1 and "Traceback" not in shard.stderr, shard.stderr
        assert read_manifest(tmp_path / "sh" / "errors.jsonl") == [
            {"source": "locked", "reason": "folder cannot be read (permission denied)"}
        ]
    finally:
        os.chmod(src / "locked", 0o755)


def test_a_symlinked_folder_is_a_skip_line_not_a_hole(src, tmp_path):
    make_file(tmp_path / "elsewhere" / "far.wav")
    make_file(src / "near.wav")
    os.symlink(tmp_path / "elsewhere", src / "linked")
    os.symlink(src, src / "loop")  # followed, it would never end
    summary = run_prep("convert", str(src), str(tmp_path / "out"), "-j", "1", timeout=TIMEOUT)
    assert summary.returncode == 0, summary.stderr
    converted, errors, skipped = _outcomes(tmp_path / "out")
    assert converted == {"near.wav"} and errors == {}
    assert skipped == {
        "linked": "symlinked folder, not followed",
        "loop": "symlinked folder, not followed",
    }
    # shard has no skip list: what it leaves out is in its errors
    shard = run_prep("shard", str(src), str(tmp_path / "sh"), "-j", "1", timeout=TIMEOUT)
    assert {e["source"] for e in read_manifest(tmp_path / "sh" / "errors.jsonl")} == {
        "linked",
        "loop",
    }, shard.stderr


def _plant_non_files(folder: Path) -> dict[str, str]:
    os.mkfifo(folder / "fifo.wav")
    os.symlink("/dev/urandom", folder / "random.wav")
    os.symlink("/dev/zero", folder / "zero.flac")
    return {
        "fifo.wav": "not a regular file (a FIFO)",
        "random.wav": "not a regular file (a character device)",
        "zero.flac": "not a regular file (a character device)",
    }


def test_fifos_and_devices_are_refused_by_name_and_never_read(src, tmp_path):
    make_file(src / "ok.wav")
    expected = _plant_non_files(src)
    proc = run_prep("convert", str(src), str(tmp_path / "out"), "-j", "2", timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    converted, errors, _ = _outcomes(tmp_path / "out")
    assert converted == {"ok.wav"} and errors == expected

    assert _shard_errors(src, tmp_path) == expected

    stats = run_prep("stats", str(src), "--json", timeout=TIMEOUT)
    assert stats.returncode == 0 and json.loads(stats.stdout)["errors"] == 3, stats.stderr


def test_fifos_and_devices_listed_by_a_manifest_are_refused(src, tmp_path):
    make_file(src / "ok.wav")
    expected = _plant_non_files(src)
    lines = [{"audio_filepath": name} for name in ["ok.wav", *expected]]
    (src / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = run_prep("convert", str(src / "in.jsonl"), str(tmp_path / "out"), timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    converted, errors, _ = _outcomes(tmp_path / "out")
    assert converted == {"ok.wav"} and errors == expected


def test_a_name_that_is_not_utf8_is_one_error_line_in_convert_shard_and_stats(src, tmp_path):
    make_file(src / "ok.wav")
    os.makedirs(os.fsdecode(bytes(src) + b"/d\xefr"))
    for name in (b"/caf\xe9.wav", b"/d\xefr/inside.wav"):
        with open(bytes(src) + name, "wb") as fh:  # soundfile takes no such name
            sf.write(fh, sine(440, 0.5, 16000), 16000, format="WAV")
    expected = {
        "caf\\xe9.wav": "file name is not valid UTF-8",
        "d\\xefr": "folder name is not valid UTF-8",
    }
    proc = run_prep("convert", str(src), str(tmp_path / "out"), "-j", "1", timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    converted, errors, _ = _outcomes(tmp_path / "out")
    assert converted == {"ok.wav"} and errors == expected

    assert _shard_errors(src, tmp_path) == expected

    stats = run_prep("stats", str(src), "--json", timeout=TIMEOUT)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["items"] == 1 and json.loads(stats.stdout)["errors"] == 2


def test_bad_manifest_lines_are_one_error_line_each_and_the_rest_converts(src, tmp_path):
    make_file(src / "a.wav")
    make_file(src / "b.wav")
    (src / "sub").mkdir()
    raw = [
        '{"audio_filepath": "a.wav", "text": "first"}',
        '{"audio_filepath": ""}',
        '{"audio_filepath": "."}',
        '{"audio_filepath": "/"}',
        '{"audio_filepath": "sub"}',
        '{"audio_filepath": 5}',
        '{"audio_filepath": null}',
        '{"text": "no path"}',
        '{"audio_filepath": "b.wav", "text": "lone \\ud800 surrogate"}',
        '{"audio_filepath": "caf\\udce9.wav"}',
        '{"audio_filepath": "a.wav", "text": "listed twice"}',
    ]
    (src / "in.jsonl").write_text("\n".join(raw) + "\n")
    proc = run_prep("convert", str(src / "in.jsonl"), str(tmp_path / "out"), timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    converted, errors, _ = _outcomes(tmp_path / "out")
    assert converted == {"a.wav"}
    assert read_manifest(tmp_path / "out" / "manifest.jsonl")[0]["text"] == "first"
    assert errors == {
        "in.jsonl entry 2": "'audio_filepath' names no file ('')",
        "in.jsonl entry 3": "'audio_filepath' names no file ('.')",
        "in.jsonl entry 4": "'audio_filepath' names no file ('/')",
        "sub": "is a directory",
        "in.jsonl entry 6": "'audio_filepath' is not a string",
        "in.jsonl entry 7": "'audio_filepath' is not a string",
        "in.jsonl entry 8": "no 'audio_filepath'",
        "in.jsonl entry 9": "holds text that is not valid UTF-8 (a lone surrogate)",
        "in.jsonl entry 10": "holds text that is not valid UTF-8 (a lone surrogate)",
        "a.wav": "manifest line 11 names the audio of line 1",  # one utterance, twice
    }


def test_a_transcript_that_is_not_utf8_fails_its_file_and_an_empty_one_is_empty_text(src, out):
    make_file(src / "latin.wav")
    (src / "latin.txt").write_bytes("café".encode("latin-1"))
    make_file(src / "empty.wav")
    (src / "empty.txt").write_bytes(b"")
    proc = run_prep("convert", str(src), str(out), "-j", "1", timeout=TIMEOUT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    converted, errors, _ = _outcomes(out)
    assert converted == {"empty.wav"}
    assert read_manifest(out / "manifest.jsonl")[0]["text"] == ""
    assert errors == {"latin.wav": "transcript latin.txt is not UTF-8 text (byte 0xe9 at 3)"}
    assert not (out / "latin.wav").exists()


@pytest.mark.parametrize("char", ["x", "é", "語"])
def test_temporary_names_fit_name_max_for_any_legal_name(tmp_path, char):
    for length in range(1, NAME_MAX + 1):
        name = (char * length).encode()[:length].decode("utf-8", "ignore") or "x"
        tmp = partial_name(tmp_path / name)
        assert len(os.fsencode(tmp.name)) <= NAME_MAX
        assert tmp == partial_name(tmp_path / name)  # deterministic
        assert tmp.parent == tmp_path
    tmp.write_bytes(b"left over")
    assert remove_partials(tmp_path) == 1


def test_a_source_name_of_255_bytes_converts(src, out):
    long_name = "x" * (NAME_MAX - 4) + ".wav"
    make_file(src / long_name)
    accented = "é" * ((NAME_MAX - 5) // 2) + ".flac"
    make_file(src / accented)
    proc = run_prep("convert", str(src), str(out), "-j", "1", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    converted, _, _ = _outcomes(out)
    assert converted == {long_name, accented}
    assert (out / long_name).is_file()


def test_discover_walks_a_deep_tree(tmp_path):
    folder = tmp_path / "src"
    deep = folder
    for _ in range(200):
        deep = deep / "d"
    make_file(deep / "bottom.wav")
    (source,) = discover(folder)
    assert source.rel.endswith("d/bottom.wav") and source.problem is None


def test_stats_counts_manifest_durations_it_cannot_use_instead_of_crashing(tmp_path):
    durations = ["2.0", "-1", "1e999", "NaN", '"long"', "true"]
    raw = [f'{{"audio_filepath": "{i}.wav", "duration": {d}}}' for i, d in enumerate(durations)]
    (tmp_path / "m.jsonl").write_text("\n".join(raw) + "\n")
    proc = run_prep("stats", str(tmp_path / "m.jsonl"), "--json", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert (stats["items"], stats["hours"], stats["invalid_entries"]) == (1, 2.0 / 3600, 5)
    text = run_prep("stats", str(tmp_path / "m.jsonl"), timeout=TIMEOUT)
    assert "invalid      5 entries" in text.stdout and "Traceback" not in text.stderr
