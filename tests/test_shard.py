"""prep shard: the segment plan, every format read back bit for bit, determinism, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
from conftest import REPO, make_file, run_prep
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.mel import LogMel
from loaders.mel_storage import from_storage
from manifests import read_manifest, validate_manifest
from prep.convert import ConvertOptions, convert
from prep.segmenting import item_key, parse_duration, plan_spans
from prep.shard import ShardOptions, shard

MEL = {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80,
       "f_min": 0.0, "f_max": 8000.0, "log": "natural"}  # fmt: skip
ALL = ("segments", "mel", "webdataset", "hdf5", "memmap")


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 5000),
    segment=st.integers(1, 700),
    hop_fraction=st.floats(0.1, 1.0),
    last=st.sampled_from(["pad", "drop", "keep"]),
)
def test_segment_plan_properties(n, segment, hop_fraction, last):
    hop = max(1, int(segment * hop_fraction))
    spans = plan_spans(n, segment, hop, last)
    assert [s.start for s in spans] == [i * hop for i in range(len(spans))]
    assert all(s.length == segment for s in spans[:-1])
    assert all(0 < s.length <= segment and s.start + s.length <= n for s in spans)
    covered = spans[-1].start + spans[-1].length if spans else 0
    if last != "drop":
        assert covered == n  # nothing at the end is lost
    if hop == segment and last == "keep":
        flat = [i for s in spans for i in range(s.start, s.start + s.length)]
        assert flat == list(range(n))  # every sample exactly once, in order


def test_min_last_drops_short_tails_even_with_pad():
    assert [s.length for s in plan_spans(250, 100, None, "pad", min_last=0.6)] == [100, 100]
    assert [s.length for s in plan_spans(260, 100, None, "pad", min_last=0.6)] == [100, 100, 60]
    assert plan_spans(50, 100, None, "drop") == []
    assert [s.length for s in plan_spans(50, None, None, "drop")] == [50]


@pytest.mark.parametrize(
    ("text", "samples"),
    [("5s", 80000), ("2.5s", 40000), ("500ms", 8000), ("80000", 80000), (".5s", 8000)],
)
def test_parse_duration(text, samples):
    assert parse_duration(text, 16000) == samples


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", "0s", "1.5", ""])
def test_parse_duration_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        parse_duration(bad, 16000)


def test_keys_have_no_dots_or_slashes_and_are_stable_and_unique():
    sources = ["Track 2.0 (Clean).mp3", "a/b.c/d.flac", "a_b.mp3", "a.b.mp3", "ü/ñ.ogg"]
    keys = [item_key(s, i) for s in sources for i in range(3)]
    assert len(set(keys)) == len(keys)
    assert all("." not in k and "/" not in k and "\\" not in k for k in keys)
    assert item_key("Track 2.0 (Clean).mp3", 7) == item_key("Track 2.0 (Clean).mp3", 7)
    assert item_key("Track 2.0 (Clean).mp3", 7).startswith("Track_2_0_Clean")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A small converted set: clips of varied length, one with a transcript and a tricky name."""
    root = tmp_path_factory.mktemp("shard")
    src = root / "src"
    for i, seconds in enumerate([0.7, 2.3, 5.0, 11.2]):
        make_file(src / f"spk{i % 2}" / f"utt{i}.mp3", seconds=seconds)
    make_file(src / "Track 2.0 (Clean).flac", seconds=3.1)
    (src / "spk0" / "utt0.txt").write_text("hello there")
    convert(src, root / "conv", ConvertOptions(jobs=1))
    return root / "conv"


def _converted_samples(conv):
    """source -> the int16 samples prep convert wrote for it."""
    return {
        e["source"]: sf.read(conv / e["audio_filepath"], dtype="int16")[0]
        for e in read_manifest(conv / "manifest.jsonl")
    }


@pytest.fixture(scope="module")
def sharded(converted, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "sh"
    options = ShardOptions(formats=ALL, segment=32000, mel=MEL, shard_size=3, jobs=2)
    summary = shard(converted, out, options)
    assert summary.failed == 0
    return out


def _check_row(row, samples, entry):
    start = int(round(entry["offset"] * 16000))
    real = samples[entry["source"]][start : start + entry["num_samples"]]
    assert len(real) == entry["num_samples"]
    np.testing.assert_array_equal(row[: entry["num_samples"]], real)
    assert not row[entry["num_samples"] :].any()  # padding is silence


def test_every_format_has_a_manifest_and_format_json(sharded):
    for name in ALL:
        fmt = json.loads((sharded / name / "format.json").read_text())
        assert fmt["format"] == name and fmt["sample_rate"] == 16000
        assert fmt["segment_samples"] == 32000 and fmt["hop_samples"] == 32000
        assert fmt["last"] == "pad"
        assert validate_manifest(sharded / name / "manifest.jsonl", required=("key",)) == 14
        assert not (sharded / name / ".params.json").exists()
    assert json.loads((sharded / "mel" / "format.json").read_text())["mel"] == MEL
    assert not (sharded / ".staging").exists()


def test_segments_round_trip_bit_for_bit(sharded, converted):
    samples = _converted_samples(converted)
    for entry in read_manifest(sharded / "segments" / "manifest.jsonl"):
        row, rate = sf.read(sharded / "segments" / entry["audio_filepath"], dtype="int16")
        assert rate == 16000 and len(row) == 32000
        _check_row(row, samples, entry)


def test_memmap_round_trip_bit_for_bit(sharded, converted):
    samples = _converted_samples(converted)
    array = np.load(sharded / "memmap" / "audio.npy", mmap_mode="r")
    assert array.dtype == np.int16 and array.shape == (14, 32000) and array.flags.c_contiguous
    for entry in read_manifest(sharded / "memmap" / "manifest.jsonl"):
        _check_row(array[entry["row"]], samples, entry)


def test_hdf5_round_trip_bit_for_bit(sharded, converted):
    samples = _converted_samples(converted)
    with h5py.File(sharded / "hdf5" / "data.h5", "r") as f:
        assert f["audio"].shape == (14, 32000) and f["audio"].chunks == (1, 32000)
        assert f["mel"].shape == (14, 80, 201)
        assert f.attrs["sample_rate"] == 16000 and json.loads(f.attrs["mel"]) == MEL
        keys = [k.decode() for k in f["keys"][:]]
        for entry in read_manifest(sharded / "hdf5" / "manifest.jsonl"):
            assert keys[entry["row"]] == entry["key"]
            _check_row(f["audio"][entry["row"]], samples, entry)


def test_webdataset_reads_back_with_the_webdataset_library_and_tar(sharded, converted):
    samples = _converted_samples(converted)
    fmt = json.loads((sharded / "webdataset" / "format.json").read_text())
    assert fmt["num_shards"] == 5 and fmt["samples_per_shard"] == 3
    urls = [str(sharded / "webdataset" / s) for s in fmt["shards"]]
    entries = {e["key"]: e for e in read_manifest(sharded / "webdataset" / "manifest.jsonl")}
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        row, _ = sf.read(io.BytesIO(sample["wav"]), dtype="int16")
        _check_row(row, samples, entries[sample["__key__"]])
        assert meta["num_samples"] == entries[sample["__key__"]]["num_samples"]
        assert np.load(io.BytesIO(sample["mel.npy"])).shape == (80, 201)
        expected_text = b"hello there" if meta["source"] == "spk0/utt0.mp3" else b""
        assert sample["txt"] == expected_text
        seen.append(sample["__key__"])
    assert sorted(seen) == sorted(entries)
    listing = subprocess.run(["tar", "-tf", urls[0]], capture_output=True, text=True, check=True)
    assert all(line.split(".", 1)[0] in entries for line in listing.stdout.split())
    # shuffled across shards: the first shard is not one source's consecutive segments
    first = [entries[line.split(".", 1)[0]]["source"] for line in listing.stdout.split()]
    assert len(set(first)) > 1


def test_precomputed_mel_matches_on_the_fly_mel(sharded):
    fmt = json.loads((sharded / "mel" / "format.json").read_text())
    module = LogMel(**fmt["mel"])
    segments = {e["key"]: e for e in read_manifest(sharded / "segments" / "manifest.jsonl")}
    for entry in read_manifest(sharded / "mel" / "manifest.jsonl"):
        stored = np.load(sharded / "mel" / entry["mel_filepath"])
        audio, _ = sf.read(sharded / "segments" / segments[entry["key"]]["audio_filepath"],
                           dtype="int16")  # fmt: skip
        on_the_fly = module(torch.from_numpy(audio)).numpy()
        np.testing.assert_allclose(from_storage(stored, entry), on_the_fly, atol=1e-4)


def test_uint8_mel_records_its_range_and_error(converted, tmp_path):
    options = ShardOptions(formats=("mel",), segment=32000, mel=MEL, mel_dtype="uint8", jobs=1)
    shard(converted, tmp_path / "q", options)
    fmt = json.loads((tmp_path / "q" / "mel" / "format.json").read_text())
    module = LogMel(**fmt["mel"])
    worst = 0.0
    reference = shard(converted, tmp_path / "f", ShardOptions(formats=("mel",), segment=32000,
                                                               mel=MEL, jobs=1))  # fmt: skip
    assert reference.failed == 0
    floats = {e["key"]: e for e in read_manifest(tmp_path / "f" / "mel" / "manifest.jsonl")}
    for entry in read_manifest(tmp_path / "q" / "mel" / "manifest.jsonl"):
        q = np.load(tmp_path / "q" / "mel" / entry["mel_filepath"])
        assert q.dtype == np.uint8 and entry["mel_max"] > entry["mel_min"]
        exact = np.load(tmp_path / "f" / "mel" / floats[entry["key"]]["mel_filepath"])
        worst = max(worst, float(np.abs(from_storage(q, entry) - exact).max()))
    assert 0 < worst <= fmt["mel_uint8_max_error"] + 1e-5
    assert module.config == MEL


def _tree(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_output_is_identical_whatever_the_number_of_jobs(converted, sharded, tmp_path):
    options = ShardOptions(formats=ALL, segment=32000, mel=MEL, shard_size=3, jobs=1)
    shard(converted, tmp_path / "j1", options)
    a, b = _tree(tmp_path / "j1"), _tree(sharded)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_rerun_skips_complete_formats_and_rebuilds_changed_ones(converted, tmp_path):
    out = tmp_path / "sh"
    options = ShardOptions(formats=("segments", "memmap"), segment=32000, mel=MEL, jobs=1)
    shard(converted, out, options)
    before = _tree(out)
    again = shard(converted, out, options)
    assert again.done_formats == ["segments", "memmap"] and again.items == 0
    assert _tree(out) == before
    changed = shard(converted, out, ShardOptions(formats=("memmap",), segment=16000, jobs=1))
    assert changed.written_formats and np.load(out / "memmap" / "audio.npy").shape[1] == 16000


def test_variable_length_items_without_segment(converted, tmp_path):
    samples = _converted_samples(converted)
    out = tmp_path / "whole"
    shard(converted, out, ShardOptions(formats=("hdf5", "webdataset"), jobs=1))
    entries = read_manifest(out / "hdf5" / "manifest.jsonl")
    assert len(entries) == 5 and all(e["offset"] == 0.0 for e in entries)
    with h5py.File(out / "hdf5" / "data.h5", "r") as f:
        offsets = f["offsets"][:]
        for e in entries:
            row = f["audio"][offsets[e["row"]] : offsets[e["row"] + 1]]
            np.testing.assert_array_equal(row, samples[e["source"]])
    assert json.loads((out / "webdataset" / "format.json").read_text())["segment_samples"] is None


def test_flac_codec_in_shards(converted, tmp_path):
    shard(converted, tmp_path / "fl", ShardOptions(formats=("webdataset",), segment=32000,
                                                   codec="flac", jobs=1))  # fmt: skip
    tar = next((tmp_path / "fl" / "webdataset").glob("*.tar"))
    sample = next(iter(wds.WebDataset(str(tar), shardshuffle=False)))
    assert "flac" in sample and sf.info(io.BytesIO(sample["flac"])).format == "FLAC"


def test_bad_input_is_named_and_the_rest_written(tmp_path):
    src = tmp_path / "audio"
    make_file(src / "good.flac", seconds=2.5, sr=16000, channels=1)
    make_file(src / "short.flac", seconds=0.5, sr=16000, channels=1)
    (src / "broken.mp3").write_bytes(b"\x00" * 5000)
    proc = run_prep("shard", str(src), str(tmp_path / "out"), "--segment", "1s", "--last", "drop",
                    "--format", "segments,hdf5", "-j", "2")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = {e["source"]: e["reason"] for e in read_manifest(tmp_path / "out" / "errors.jsonl")}
    assert set(errors) == {"broken.mp3", "short.flac"}
    assert "shorter than the --segment" in errors["short.flac"]
    keys = [e["source"] for e in read_manifest(tmp_path / "out" / "hdf5" / "manifest.jsonl")]
    assert keys == ["good.flac", "good.flac"]


def test_a_manifest_line_pointing_at_nothing_is_reported(converted, tmp_path):
    lines = (converted / "manifest.jsonl").read_text().splitlines()[:2]
    lines.append(json.dumps({"audio_filepath": "nowhere.wav", "source": "nowhere.mp3"}))
    manifest = converted / "partial.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    try:
        summary = shard(manifest, tmp_path / "o", ShardOptions(formats=("segments",), jobs=1))
    finally:
        manifest.unlink()
    assert [e["source"] for e in summary.errors] == ["nowhere.mp3"]
    assert summary.items == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "parquet"], "unknown --format"),
        (["--format", "memmap"], "memmap needs fixed-length items"),
        (["--segment", "5 minutes"], "is not a duration"),
        (["--segment", "1s", "--last", "maybe"], "--last must be one of"),
    ],
)
def test_nonsense_options_are_refused_in_one_line(converted, tmp_path, args, message):
    proc = run_prep("shard", str(converted), str(tmp_path / "o"), *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_formats_without_mel_do_not_import_torch():
    code = (
        "import sys; from prep.shard import shard, ShardOptions; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchaudio')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout


def test_shard_decodes_any_audio_folder_on_the_way(tmp_path):
    src = tmp_path / "raw"
    make_file(src / "a.mp3", seconds=1.2, sr=44100)
    make_file(src / "b.ogg", seconds=0.8, sr=22050)
    summary = shard(src, tmp_path / "o", ShardOptions(formats=("memmap",), segment=8000, jobs=1))
    assert summary.failed == 0 and summary.items == 5
    array = np.load(tmp_path / "o" / "memmap" / "audio.npy")
    assert array.shape == (5, 8000) and np.abs(array).max() > 1000


def test_stats_on_a_converted_set_and_on_raw_audio(converted, tmp_path):
    proc = run_prep("stats", str(converted), "--json", check=True)
    stats = json.loads(proc.stdout)
    assert stats["items"] == 5 and stats["sample_rates"] == {"16000": 5}
    assert abs(stats["duration_max"] - 11.2) < 0.05 and stats["errors"] == 0
    assert sum(stats["histogram"]["counts"]) == 5
    text = run_prep("stats", str(converted), check=True).stdout
    assert "duration histogram" in text and "█" in text
    src = tmp_path / "raw"
    make_file(src / "a.mp3", seconds=1.0, sr=44100)
    make_file(src / "b.flac", seconds=2.0, sr=22050, channels=1)
    (src / "bad.wav").write_bytes(b"nope")
    raw = json.loads(run_prep("stats", str(src), "--json", check=True).stdout)
    assert raw["items"] == 2 and raw["errors"] == 1
    assert raw["sample_rates"] == {"22050": 1, "44100": 1} and raw["channels"] == {"1": 1, "2": 1}


def test_webdataset_shards_load_with_hugging_face_datasets(sharded):
    """Optional: needs ``datasets`` and the ``torchcodec`` it decodes audio columns with."""
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("torchcodec")
    files = sorted(str(p) for p in (sharded / "webdataset").glob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train")
    assert len(ds) == 14
    assert {c for c in ds.column_names if not c.startswith("__")} == {
        "json",
        "mel.npy",
        "txt",
        "wav",
    }
