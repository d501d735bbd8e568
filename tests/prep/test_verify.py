"""prep verify: clean folders pass; every kind of damage is named, with a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from helpers import CORE_FORMATS, make_file, run_prep

from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.verify import verify


@pytest.fixture
def made(sharded_set):
    """The session's prepared set (conftest): ``src/``, ``conv/`` and every format in ``sh/``
    (2 s items, 3 per shard). Read only."""
    return sharded_set.parent


@pytest.fixture
def copy(made, tmp_path):
    """A private copy of the made folders, free to damage."""
    shutil.copytree(made, tmp_path / "m", copy_function=shutil.copy2)
    return tmp_path / "m"


def _flip_byte(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_clean_folders_pass_on_the_command_line(made):
    for folder in ("conv", "sh", "sh/hdf5"):
        result = run_prep("verify", str(made / folder))
        assert result.returncode == 0, result.stderr
        assert "all good" in result.stderr and result.stdout == ""
    report = verify(made / "sh")
    assert sorted(report.checked) == sorted(CORE_FORMATS) and report.checked["memmap"] == 14
    assert verify(made / "conv", sources=made / "src").ok
    assert verify(made / "sh", sources=made / "conv").ok


def test_one_corrupt_byte_in_a_shard_is_named(copy):
    shard_file = copy / "sh" / "webdataset" / "shard-000001.tar"
    _flip_byte(shard_file, shard_file.stat().st_size // 2)
    result = run_prep("verify", str(copy / "sh"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "webdataset/shard-000001.tar: content differs from the recorded sha256 "
        "(corrupt or rewritten)"
    ]
    assert "1 problems" in result.stderr


def test_missing_truncated_and_reshaped_outputs_are_named(copy):
    sh = copy / "sh"
    segment = read_manifest(sh / "segments" / "manifest.jsonl")[2]["audio_filepath"]
    (sh / "segments" / segment).unlink()
    mel = read_manifest(sh / "mel" / "manifest.jsonl")[0]["mel_filepath"]
    _flip_byte(sh / "mel" / mel, 200)
    with open(sh / "hdf5" / "data.h5", "r+b") as fh:
        fh.truncate(4096)
    np.save(sh / "memmap" / "audio.npy", np.zeros((6, 32000), dtype=np.int16))
    last_shard = json.loads((sh / "webdataset" / "format.json").read_text())["shards"][-1]
    (sh / "webdataset" / last_shard).unlink()
    problems = "\n".join(verify(sh).problems)
    assert f"segments/{segment}: missing" in problems
    assert f"mel/{mel}: content differs" in problems
    assert "hdf5/data.h5: 4096 bytes" in problems
    assert "memmap/audio.npy: 384128 bytes" in problems
    assert "expected int16 (14, 32000)" in problems
    assert f"webdataset/{last_shard}: missing" in problems


def test_a_damaged_converted_file_is_named_with_its_reason(copy):
    entries = read_manifest(copy / "conv" / "manifest.jsonl")
    _flip_byte(copy / "conv" / entries[0]["audio_filepath"], 1000)
    (copy / "conv" / entries[1]["audio_filepath"]).unlink()
    report = verify(copy / "conv")
    assert report.problems == [
        f"{entries[0]['audio_filepath']}: content differs from the recorded sha256 "
        "(corrupt or rewritten)",
        f"{entries[1]['audio_filepath']}: missing",
    ]


def test_sources_changed_since_conversion_are_named(copy):
    src = copy / "src"
    before = os.stat(src / "spk0/utt0.mp3")
    _flip_byte(src / "spk0/utt0.mp3", 500)  # same size, other content
    os.utime(src / "spk0/utt0.mp3", ns=(before.st_atime_ns, before.st_mtime_ns))
    touched = (before.st_atime_ns, before.st_mtime_ns + 10**9)
    os.utime(src / "spk0/utt2.mp3", ns=touched)
    (src / "spk1/utt3.mp3").unlink()
    assert verify(copy / "conv").ok  # the outputs themselves are fine
    result = run_prep("verify", str(copy / "conv"), "--sources", str(src))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "source spk0/utt0.mp3: content changed since it was converted",
        "source spk0/utt2.mp3: modified since it was converted (same content)",
        "source spk1/utt3.mp3: missing",
    ]


def test_shards_made_from_other_inputs_are_named(copy):
    make_file(copy / "conv" / "extra.wav", seconds=1.0, sr=16000, channels=1)
    with open(copy / "conv" / "manifest.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"audio_filepath": "extra.wav", "duration": 1.0}) + "\n")
    problems = verify(copy / "sh", sources=copy / "conv").problems
    assert len(problems) == len(CORE_FORMATS)
    assert all("made from other inputs" in p for p in problems)


def test_an_interrupted_format_and_a_foreign_folder(copy, tmp_path):
    (copy / "sh" / "hdf5" / "format.json").rename(copy / "sh" / "hdf5" / ".params.json")
    assert verify(copy / "sh").problems == [
        "hdf5: incomplete (an interrupted prep shard); run it again"
    ]
    (tmp_path / "empty").mkdir()
    result = run_prep("verify", str(tmp_path / "empty"))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'empty'}: no manifest.jsonl or format.json: not written by prep"
    )


def _rewrite_manifest(path, change) -> None:
    entries = read_manifest(path)
    change(entries)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")


def test_duplicate_keys_and_bad_lengths_in_a_manifest_are_named(copy):
    def damage(entries):
        entries[1]["key"] = entries[0]["key"]
        entries[2]["num_samples"] = 0
        entries[3]["num_samples"] = -5

    _rewrite_manifest(copy / "sh" / "memmap" / "manifest.jsonl", damage)
    problems = verify(copy / "sh" / "memmap").problems
    key = read_manifest(copy / "sh" / "memmap" / "manifest.jsonl")[0]["key"]
    assert f"memmap/manifest.jsonl: key {key!r} appears 2 times" in problems
    assert any("manifest.jsonl:3: num_samples 0 is not a positive" in p for p in problems)
    assert any("manifest.jsonl:4: num_samples -5 is not a positive" in p for p in problems)


@pytest.mark.parametrize("text", ["[1]", "not json {", ""])
def test_a_format_json_that_is_not_an_object_is_one_line(copy, text):
    (copy / "sh" / "hdf5" / "format.json").write_text(text)
    result = run_prep("verify", str(copy / "sh"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [p for p in result.stdout.splitlines() if p.startswith("hdf5")] == [
        p for p in result.stdout.splitlines() if "hdf5/format.json: not" in p
    ]
    assert len([p for p in result.stdout.splitlines() if p.startswith("hdf5")]) == 1
    result = run_prep("verify", str(copy / "sh"), "--sources", str(copy / "conv"))
    assert "Traceback" not in result.stderr and result.returncode == 1


def test_item_counts_per_shard_are_held_to_format_json(copy):
    import tarfile

    folder = copy / "sh" / "webdataset"
    fmt = json.loads((folder / "format.json").read_text())
    first = folder / fmt["shards"][0]
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    keys = [m.name.split(".")[0] for m in members]
    with open(first, "r+b") as fh:  # cut at the start of the shard's last item
        fh.truncate(members[keys.index(keys[-1])].offset)
    fmt["files"].pop(fmt["shards"][0])  # as if the file record were lost too
    (folder / "format.json").write_text(json.dumps(fmt))
    problems = verify(folder).problems
    assert f"webdataset/{fmt['shards'][0]}: 2 items, format.json says 3" in problems


def test_sources_may_be_the_manifest_the_set_was_made_from(copy):
    manifest = copy / "src" / "list.jsonl"
    sources = [e["source"] for e in read_manifest(copy / "conv" / "manifest.jsonl")]
    manifest.write_text("".join(json.dumps({"audio_filepath": s}) + "\n" for s in sources))
    assert convert(manifest, copy / "conv2", ConvertOptions(jobs=1)).failed == 0
    assert verify(copy / "conv2", sources=manifest).ok
    result = run_prep("verify", str(copy / "conv"), "--sources", str(copy / "nowhere"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "nowhere: no such folder or manifest" in result.stderr


def test_object_storage_is_refused_in_one_line(made):
    for args in (["s3://bucket/sh"], [str(made / "conv"), "--sources", "s3://bucket/src"]):
        result = run_prep("verify", *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: prep verify reads local folders only; s3://")
