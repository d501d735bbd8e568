"""s3:// SRC and OUT against a real S3-compatible server on loopback (moto's server mode):
the same bytes as local runs, resumable, and shards read back by the loader from s3."""

from __future__ import annotations

import os

import fsspec
import numpy as np
import pytest
from helpers import make_file, run_prep
from moto.server import ThreadedMotoServer

from loaders import open_dataset
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.runlock import LOCK_NAME
from prep.shard import ShardOptions, shard

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with a bucket holding a small source set (and local copy)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("audio")
    src = tmp_path_factory.mktemp("s3") / "src"
    for i, seconds in enumerate([1.3, 2.6, 0.9, 3.4, 2.0]):
        ext = ["mp3", "ogg", "flac", "wav", "opus"][i]
        make_file(src / f"d{i % 2}" / f"c{i}.{ext}", seconds=seconds, sr=48000)
    (src / "d0" / "c0.txt").write_text("words in a bucket")
    (src / "broken.flac").write_bytes(b"fLaC" + b"\0" * 64)
    fs.put(str(src), "audio/src", recursive=True)
    yield {"fs": fs, "src": src, "env": {**os.environ}}
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _objects(fs, prefix):
    return {p[len(prefix) + 1 :]: fs.cat_file(p) for p in fs.find(prefix)}


def _files(root):
    """A local OUT's files, less the run lock (object storage has none)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.mark.s3
def test_convert_from_s3_to_s3_gives_the_local_bytes(s3, tmp_path):
    fs = s3["fs"]
    local = convert(s3["src"], tmp_path / "local", ConvertOptions(jobs=2))
    remote = convert("s3://audio/src", "s3://audio/wav16", ConvertOptions(jobs=2))
    assert (remote.converted, remote.failed) == (local.converted, local.failed) == (5, 1)
    objects, files = _objects(fs, "audio/wav16"), _files(tmp_path / "local")
    assert objects.keys() == files.keys()  # no journal or partial object left behind
    audio = [name for name in files if name.endswith(".wav")]
    assert len(audio) == 5 and all(objects[n] == files[n] for n in audio)
    remote_entries = [e for e in map(_without_mtime, _lines(objects["manifest.jsonl"]))]
    assert remote_entries == [
        _without_mtime(e) for e in read_manifest(tmp_path / "local" / "manifest.jsonl")
    ]
    assert b"words in a bucket" in objects["manifest.jsonl"]
    assert b"broken.flac" in objects["errors.jsonl"]


def _lines(data: bytes) -> list[dict]:
    import json

    return [json.loads(line) for line in data.decode().splitlines()]


def _without_mtime(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "source_mtime_ns"}  # S3 keeps seconds


@pytest.mark.s3
def test_s3_rerun_skips_done_files_and_redoes_a_deleted_one(s3):
    fs = s3["fs"]
    convert("s3://audio/src", "s3://audio/resume", ConvertOptions(jobs=1))
    before = _objects(fs, "audio/resume")
    fs.rm("audio/resume/d1/c1.wav")
    summary = convert("s3://audio/src", "s3://audio/resume", ConvertOptions(jobs=1))
    assert (summary.converted, summary.already_done) == (1, 4)
    assert _objects(fs, "audio/resume") == before


@pytest.mark.s3
def test_command_line_and_one_line_errors_with_s3(s3, tmp_path):
    env = s3["env"]
    result = run_prep("convert", "s3://audio/src", str(tmp_path / "o"), "-j", "1", env=env)
    assert result.returncode == 1 and "error: broken.flac:" in result.stderr
    assert len(read_manifest(tmp_path / "o" / "manifest.jsonl")) == 5
    result = run_prep("convert", "s3://audio/src", "s3://audio/src/inside", env=env)
    assert result.returncode == 2 and "inside the source prefix" in result.stderr
    result = run_prep("convert", "s3://audio/nothing-here", str(tmp_path / "p"), env=env)
    assert result.returncode == 2
    assert result.stderr == "error: s3://audio/nothing-here: no such prefix, or nothing under it\n"
    result = run_prep(
        "shard", str(tmp_path / "o"), "s3://audio/sh", "--format", "hdf5,webdataset", env=env
    )
    assert result.returncode == 2 and "hdf5 cannot be written to s3://audio/sh" in result.stderr


@pytest.mark.s3
def test_webdataset_shards_to_s3_and_back_through_the_loader(s3, tmp_path):
    fs = s3["fs"]
    convert("s3://audio/src", "s3://audio/conv", ConvertOptions(jobs=1))
    options = ShardOptions(formats=("webdataset",), segment=16000, shard_size=3, jobs=1)
    remote = shard("s3://audio/conv", "s3://audio/shards", options)
    local = shard("s3://audio/conv", tmp_path / "shards", options)
    assert remote.items == local.items == 12 and remote.failed == local.failed == 0
    objects, files = _objects(fs, "audio/shards"), _files(tmp_path / "shards")
    assert objects.keys() == files.keys()
    assert all(objects[name] == files[name] for name in files)  # format.json included
    again = shard("s3://audio/conv", "s3://audio/shards", options)
    assert again.done_formats == ["webdataset"]

    from_s3 = list(open_dataset("s3://audio/shards/webdataset", dtype="int16"))
    from_disk = list(open_dataset(tmp_path / "shards" / "webdataset", dtype="int16"))
    assert [s["key"] for s in from_s3] == [s["key"] for s in from_disk]
    assert len({s["key"] for s in from_s3}) == 12
    for a, b in zip(from_s3, from_disk, strict=True):
        np.testing.assert_array_equal(a["audio"].numpy(), b["audio"].numpy())


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request, tmp_path):
    """A folder on each storage kind. (fsspec's ``memory://`` commits a file when it is
    opened and ``local://`` wants its folders made first: neither is object storage.)"""
    from prep.storage import location

    if request.param == "local":
        return location(tmp_path / "loc")
    request.getfixturevalue("s3")
    return location(f"s3://audio/contract-{tmp_path.name}")


def test_every_location_keeps_one_contract(where):
    """What convert and shard rely on, the same on each storage kind."""
    import hashlib

    audio = where.join("d/a.wav")
    assert not audio.exists() and list(where.join("m.jsonl").iter_manifest()) == []
    audio.write_bytes(b"abc")
    assert audio.exists() and audio.read_bytes() == b"abc" and audio.stat().size == 3
    with pytest.raises(RuntimeError), where.join("d/b.bin").open_write() as fh:
        fh.write(b"half")
        raise RuntimeError("a failed write leaves nothing")
    with where.join("d/c.bin").writing() as stored:
        if isinstance(stored.target, os.PathLike):  # a temporary file
            stored.target.write_bytes(b"xyz")
        else:  # an in-memory buffer
            stored.target.write(b"xyz")
    assert (stored.size, stored.sha256) == (3, hashlib.sha256(b"xyz").hexdigest())
    assert where.list_files() == {"d/a.wav": 3, "d/c.bin": 3}
    assert where.size_lookup()("d/c.bin") == 3 and where.size_lookup()("nope") is None
    assert where.join("m.jsonl").write_manifest([{"a": 1}, {"b": "é"}]) == 2
    assert list(where.join("m.jsonl").iter_manifest()) == [{"a": 1}, {"b": "é"}]
    journal = where.journal("t")
    for batch in ("x", "y"):
        with journal.writer(batch) as writer:
            writer.append({"source": batch})
    assert sorted(r["source"] for r in journal.records()) == ["x", "y"]
    journal.clear()
    assert list(journal.records()) == []
    where.join("d").remove()
    assert where.list_files() == {"m.jsonl": len('{"a": 1}\n{"b": "é"}\n'.encode())}


def test_a_file_url_is_the_local_file_system(tmp_path):
    make_file(tmp_path / "src" / "a.flac", seconds=1.0, sr=48000)
    convert(tmp_path / "src", tmp_path / "plain", ConvertOptions(jobs=1))
    summary = convert(f"file://{tmp_path}/src", f"file://{tmp_path}/url", ConvertOptions(jobs=1))
    assert summary.converted == 1
    assert _files(tmp_path / "url") == _files(tmp_path / "plain")


@pytest.mark.s3
def test_a_source_problem_is_told_once_when_out_is_on_s3(s3, tmp_path):
    make_file(tmp_path / "src" / "ok.wav", seconds=1.0, sr=16000)
    os.mkfifo(tmp_path / "src" / "pipe.wav")
    result = run_prep("convert", str(tmp_path / "src"), "s3://audio/fifo", env=s3["env"])
    assert result.returncode == 1
    assert result.stderr.count("error: pipe.wav:") == 1, result.stderr


@pytest.mark.s3
def test_stats_reads_manifests_on_s3_as_it_reads_local_folders(s3, tmp_path):
    """Manifests and format.json only: the numbers of the same folders on disk."""
    import json

    env, options = s3["env"], ShardOptions(formats=("webdataset",), segment=16000, jobs=1)
    convert("s3://audio/src", "s3://audio/st-conv", ConvertOptions(jobs=1))
    shard("s3://audio/st-conv", "s3://audio/st-sh", options)
    convert(s3["src"], tmp_path / "conv", ConvertOptions(jobs=1))
    shard(tmp_path / "conv", tmp_path / "sh", options)
    for remote, local in [
        ("s3://audio/st-conv", tmp_path / "conv"),
        ("s3://audio/st-sh", tmp_path / "sh"),
        ("s3://audio/st-sh/webdataset", tmp_path / "sh" / "webdataset"),
        ("s3://audio/st-conv/manifest.jsonl", tmp_path / "conv" / "manifest.jsonl"),
    ]:
        result = run_prep("stats", remote, "--json", env=env)
        assert result.returncode == 0, result.stderr
        got, want = (
            json.loads(result.stdout),
            json.loads(run_prep("stats", str(local), "--json").stdout),
        )
        assert got["path"] == remote and got["items"] > 0 and got["errors"] == want["errors"]
        assert _but_disk(got) == _but_disk(want)
    result = run_prep("stats", "s3://audio/src", env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: s3://audio/src: ") and "local" in result.stderr


def _but_disk(stats: dict) -> dict:
    """Stats less the path and disk sizes (a local OUT also holds its run lock)."""
    formats = [{k: v for k, v in f.items() if k != "disk_bytes"} for f in stats.get("formats", [])]
    return {k: v for k, v in stats.items() if k not in ("path", "disk_bytes")} | {
        "formats": formats
    }
