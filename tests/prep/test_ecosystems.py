"""prep shard --format hf / nemo_tarred: read back with the real ``datasets`` (and pyarrow,
torchcodec), and against the layout NeMo's convert_to_tarred_audio_dataset.py writes."""

from __future__ import annotations

import io
import json
import re
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers import modules_loaded_by, run_prep
from lockcheck import torchcodec_load_error

from loaders import open_dataset
from manifests import read_manifest
from prep.errors import RunError
from prep.shard import ShardOptions, shard
from prep.verify import verify

FORMATS = ("memmap", "webdataset", "hf", "nemo_tarred")


@pytest.fixture(scope="module")
def made(converted_set, tmp_path_factory):
    """The session's converted set in memmap, webdataset, hf and nemo_tarred, one run
    (2 s items, 3 per shard, NeMo shards a multiple of 2)."""
    out = tmp_path_factory.mktemp("eco") / "out"
    options = ShardOptions(formats=FORMATS, segment=32000, shard_size=3, nemo_world_size=2, jobs=1)
    assert shard(converted_set / "conv", out, options).failed == 0
    return out


def _memmap_rows(out) -> dict[str, np.ndarray]:
    array = np.load(out / "memmap" / "audio.npy")
    return {e["key"]: array[e["row"]] for e in read_manifest(out / "memmap" / "manifest.jsonl")}


def _load(folder, tmp_path, monkeypatch, **kwargs):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"), **kwargs)


def test_hf_folder_loads_as_audio_and_holds_the_memmap_samples(made, tmp_path, monkeypatch):
    problem = torchcodec_load_error()
    assert problem is None, problem
    import datasets

    ds = _load(made / "hf", tmp_path, monkeypatch)
    assert list(ds) == ["train"]
    train = ds["train"]
    assert train.features["audio"] == datasets.Audio(sampling_rate=16000)
    rows = _memmap_rows(made)
    assert sorted(train["key"]) == sorted(rows) and len(train) == 14
    raw = train.cast_column("audio", datasets.Audio(decode=False))
    entries = {e["key"]: e for e in read_manifest(made / "hf" / "manifest.jsonl")}
    for item in raw:
        samples, rate = sf.read(io.BytesIO(item["audio"]["bytes"]), dtype="int16")
        assert rate == 16000 and item["audio"]["path"] == f"{item['key']}.wav"
        np.testing.assert_array_equal(samples, rows[item["key"]])  # bit for bit
        assert item["num_samples"] == entries[item["key"]]["num_samples"]
        assert item["duration"] == entries[item["key"]]["duration"]
        assert item["text"] == entries[item["key"]].get("text")
    for item in train.select(range(4)):  # decoded by datasets through torchcodec
        decoded = item["audio"].get_all_samples()
        assert decoded.sample_rate == 16000
        expected = rows[item["key"]].astype(np.float32) / 32768
        np.testing.assert_array_equal(decoded.data.numpy()[0], expected)
    assert train.filter(lambda x: x["text"] is not None)["text"] == ["hello there"]


def test_hf_parquet_is_byte_for_byte_what_datasets_to_parquet_writes(made, tmp_path):
    """The writer's options and metadata are datasets' own: its ``to_parquet`` of the same
    rows (row groups of 100) gives the same bytes."""
    import datasets

    fmt = json.loads((made / "hf" / "format.json").read_text())
    for shard_file in fmt["shards"]:
        ours = made / "hf" / shard_file
        theirs = tmp_path / "theirs.parquet"
        datasets.Dataset(pq.read_table(ours)).to_parquet(str(theirs), batch_size=100)
        assert ours.read_bytes() == theirs.read_bytes()
        meta = json.loads(pq.ParquetFile(ours).schema_arrow.metadata[b"huggingface"])
        assert meta["info"]["features"]["audio"] == {"sampling_rate": 16000, "_type": "Audio"}


def test_hf_and_nemo_read_back_through_open_dataset_as_memmap(made):
    rows = _memmap_rows(made)
    for name in ("hf", "nemo_tarred"):
        ds = open_dataset(made / name, dtype="int16")
        assert len(ds) == 14
        seen = set()
        for i in range(len(ds)):
            item = ds[i]
            np.testing.assert_array_equal(item["audio"].numpy(), rows[item["key"]])
            seen.add(item["key"])
        assert seen == set(rows), name
    hf = open_dataset(made / "hf")
    assert {hf[i]["text"] for i in range(len(hf)) if "text" in hf[i]} == {"hello there"}


def _brace(pattern: str) -> list[str]:
    """NeMo's brace expansion of ``audio_{0..N-1}.tar`` (braceexpand's one range form)."""
    head, lo, hi, tail = re.fullmatch(r"(.*)\{(\d+)\.\.(\d+)\}(.*)", pattern).groups()
    return [f"{head}{i}{tail}" for i in range(int(lo), int(hi) + 1)]


def test_nemo_tarred_has_the_layout_nemo_documents(made):
    folder = made / "nemo_tarred"
    fmt = json.loads((folder / "format.json").read_text())
    tars = sorted(p.name for p in folder.glob("*.tar"))
    assert fmt["num_shards"] % 2 == 0 and len(tars) == fmt["num_shards"] == 6
    assert sorted(_brace(fmt["tarred_audio_filepaths"])) == tars
    lines = [
        json.loads(x) for x in (folder / "tarred_audio_manifest.json").read_text().splitlines()
    ]
    entries = {e["key"]: e for e in read_manifest(folder / "manifest.jsonl")}
    assert len(lines) == len(entries) == 14
    members = {}
    for index in range(fmt["num_shards"]):
        with tarfile.open(folder / f"audio_{index}.tar") as tar:
            infos = tar.getmembers()
            for info in infos:  # flat, one dot (webdataset's key split), fixed headers
                assert info.isfile() and "/" not in info.name and info.name.count(".") == 1
                assert info.mtime == 0 and info.uname == "audioprep"
                members[info.name] = (index, tar.extractfile(info).read())
        shard_lines = (folder / f"sharded_manifests/manifest_{index}.json").read_text()
        assert [json.loads(x) for x in shard_lines.splitlines()] == [
            x for x in lines if x["shard_id"] == index
        ]
    counts = [sum(x["shard_id"] == s for x in lines) for s in range(fmt["num_shards"])]
    assert max(counts) - min(counts) <= 1 and counts == fmt["shard_items"]
    rows = _memmap_rows(made)
    for line in lines:
        assert set(line) <= {"audio_filepath", "duration", "shard_id", "text"}  # no offset
        key = line["audio_filepath"].removesuffix(".wav")
        shard_id, data = members[line["audio_filepath"]]
        assert shard_id == line["shard_id"] and entries[key]["member"] == line["audio_filepath"]
        assert line["duration"] * 16000 == entries[key]["num_samples"]
        assert line.get("text") == entries[key].get("text")
        samples, _ = sf.read(io.BytesIO(data), dtype="int16")
        np.testing.assert_array_equal(samples, rows[key])
    assert len(members) == 14


def test_nemo_shard_count_is_a_multiple_of_the_world_size(converted_set, tmp_path):
    conv = converted_set / "conv"
    base = {"formats": ("nemo_tarred",), "segment": 32000, "jobs": 1}
    shard(conv, tmp_path / "a", ShardOptions(**base, nemo_num_shards=3, nemo_world_size=2))
    assert len(list((tmp_path / "a" / "nemo_tarred").glob("*.tar"))) == 4
    with pytest.raises(RunError, match="cannot fill 16 shards"):
        shard(conv, tmp_path / "b", ShardOptions(**base, nemo_num_shards=15, nemo_world_size=8))
    assert not (tmp_path / "b" / "nemo_tarred" / "format.json").exists()
    proc = run_prep("shard", str(conv), str(tmp_path / "c"), "--format", "nemo_tarred",
                    "--nemo-world-size", "0")  # fmt: skip
    assert proc.returncode == 2 and "--nemo-world-size" in proc.stderr


def test_hf_split_names_the_split_load_dataset_finds(converted_set, tmp_path, monkeypatch):
    conv, out = converted_set / "conv", tmp_path / "o"
    run_prep("shard", str(conv), str(out), "--format", "hf", "--hf-split", "validation",
             "-j", "1", check=True)  # fmt: skip
    assert list(_load(out / "hf", tmp_path, monkeypatch)) == ["validation"]
    proc = run_prep("shard", str(conv), str(tmp_path / "x"), "--format", "hf",
                    "--hf-split", "../up")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: --hf-split")


def test_hf_and_nemo_repeat_byte_for_byte_and_verify_names_damage(made, converted_set, tmp_path):
    again = tmp_path / "again"
    options = ShardOptions(formats=FORMATS, segment=32000, shard_size=3, nemo_world_size=2, jobs=2)
    assert shard(converted_set / "conv", again, options).failed == 0
    for name in ("hf", "nemo_tarred"):
        first = json.loads((made / name / "format.json").read_text())["files"]
        assert json.loads((again / name / "format.json").read_text())["files"] == first
    assert verify(again).ok
    with open(again / "nemo_tarred" / "audio_1.tar", "r+b") as fh:
        fh.seek(600)
        fh.write(b"\xff\xff")
    (again / "hf" / "data" / "train-00001-of-00005.parquet").write_bytes(b"PAR1 nope")
    problems = verify(again).problems
    assert any(p.startswith("nemo_tarred/audio_1.tar: content differs") for p in problems)
    assert any(p.startswith("hf/data/train-00001-of-00005.parquet") for p in problems)


def test_the_ecosystem_formats_import_pyarrow_only_when_used():
    code = (
        "import loaders, prep.cli\nfrom prep.writers import get_writer\n"
        "get_writer('hf'); get_writer('nemo_tarred')\n"
        "from loaders.formats import reader_class\nreader_class('hf'); reader_class('nemo_tarred')"
    )
    assert modules_loaded_by(code, ("pyarrow", "datasets")) == []
