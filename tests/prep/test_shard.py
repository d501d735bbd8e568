"""prep shard: the segment plan, every format read back bit for bit, determinism, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import tarfile

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
from helpers import CORE_FORMATS, MEL, make_file, modules_loaded_by, run_prep
from hypothesis import given, settings
from hypothesis import strategies as st
from lockcheck import torchcodec_load_error

from loaders.mel import LogMel
from loaders.mel_storage import from_storage
from manifests import iter_manifest, read_manifest, validate_manifest
from prep.errors import UsageError
from prep.segmenting import Span, item_key, parse_duration, plan_spans
from prep.shard import ShardOptions, shard


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 5000),
    segment=st.integers(1, 700),
    hop_fraction=st.floats(0.1, 3.0),
    last=st.sampled_from(["pad", "drop", "keep"]),
    min_last=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_segment_plan_properties(n, segment, hop_fraction, last, min_last):
    hop = max(1, int(segment * hop_fraction))
    spans = plan_spans(n, segment, hop, last, min_last)
    assert [s.start for s in spans] == [i * hop for i in range(len(spans))]
    assert all(s.length == segment for s in spans[:-1])
    assert all(0 < s.length <= segment and s.start + s.length <= n for s in spans)
    assert all(s.length >= min_last * segment for s in spans)
    covered = spans[-1].start + spans[-1].length if spans else 0
    if last != "drop" and min_last == 0 and hop <= segment:
        assert covered == n  # nothing at the end is lost
    if hop > segment and spans:  # gaps are allowed, but only between items
        assert spans[-1].start + hop >= n or spans[-1].start + hop + segment > n
    if hop == segment and last == "keep" and min_last == 0:
        flat = [i for s in spans for i in range(s.start, s.start + s.length)]
        assert flat == list(range(n))  # every sample exactly once, in order


def test_hop_longer_than_segment_leaves_gaps_and_no_negative_item():
    # 48000 samples, 8000 per item every 32000: items at 0 and 32000; the end is in a gap
    assert plan_spans(48000, 8000, 32000, "keep") == [Span(0, 8000), Span(32000, 8000)]
    assert plan_spans(36000, 8000, 32000, "keep") == [Span(0, 8000), Span(32000, 4000)]
    assert plan_spans(36000, 8000, 32000, "drop") == [Span(0, 8000)]
    assert plan_spans(20000, 8000, 32000, "pad") == [Span(0, 8000)]
    assert plan_spans(8000, 8000, 32000, "keep") == [Span(0, 8000)]  # exactly one segment
    assert plan_spans(5000, 8000, 32000, "keep") == [Span(0, 5000)]  # shorter than one


def test_min_last_applies_to_keep_too():
    assert [s.length for s in plan_spans(250, 100, None, "keep", min_last=0.6)] == [100, 100]
    assert [s.length for s in plan_spans(50, 100, None, "keep", min_last=0.6)] == []


def test_min_last_drops_short_tails_even_with_pad():
    assert [s.length for s in plan_spans(250, 100, None, "pad", min_last=0.6)] == [100, 100]
    assert [s.length for s in plan_spans(260, 100, None, "pad", min_last=0.6)] == [100, 100, 60]
    assert plan_spans(50, 100, None, "drop") == []
    assert [s.length for s in plan_spans(50, None, None, "drop")] == [50]


@pytest.mark.parametrize(
    ("text", "samples"),
    [("5s", 80000), ("2.5s", 40000), ("500ms", 8000), ("80000samples", 80000), (".5s", 8000),
     ("10ms", 160), ("160 samples", 160), ("1S", 16000)],
)  # fmt: skip
def test_parse_duration(text, samples):
    assert parse_duration(text, 16000) == samples


@pytest.mark.parametrize(
    "bad", ["5 minutes", "-1s", "0s", "1.5", "", "80000", "5", "9ms", "159samples", "1.5samples"]
)
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


@pytest.fixture
def converted(converted_set):
    """The session's converted set (conftest): read only."""
    return converted_set / "conv"


def _converted_samples(conv):
    """source -> the int16 samples prep convert wrote for it."""
    return {
        e["source"]: sf.read(conv / e["audio_filepath"], dtype="int16")[0]
        for e in read_manifest(conv / "manifest.jsonl")
    }


@pytest.fixture
def sharded(sharded_set):
    return sharded_set


def _check_row(row, samples, entry):
    start = int(round(entry["offset"] * 16000))
    real = samples[entry["source"]][start : start + entry["num_samples"]]
    assert len(real) == entry["num_samples"]
    np.testing.assert_array_equal(row[: entry["num_samples"]], real)
    assert not row[entry["num_samples"] :].any()  # padding is silence


def test_every_format_has_a_manifest_and_format_json(sharded):
    for name in CORE_FORMATS:
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


def test_each_webdataset_shard_has_the_index_dali_wds2idx_makes(sharded, tmp_path):
    """The ``.idx`` written with each shard is byte for byte what DALI's own tool makes
    from the finished tar, and ``files`` lists it (so ``prep verify`` checks it)."""
    wds2idx = pytest.importorskip("wds2idx", reason="DALI's wds2idx (the dali extra)")
    fmt = json.loads((sharded / "webdataset" / "format.json").read_text())
    for shard_file in fmt["shards"]:
        index = shard_file.removesuffix(".tar") + ".idx"
        assert index in fmt["files"]
        made = tmp_path / index
        with wds2idx.IndexCreator(str(sharded / "webdataset" / shard_file), made, False) as ic:
            ic.create_index()
        assert (sharded / "webdataset" / index).read_bytes() == made.read_bytes()


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
    options = ShardOptions(formats=CORE_FORMATS, segment=32000, mel=MEL, shard_size=3, jobs=1)
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
    conv = shutil.copytree(converted, tmp_path / "conv")  # the session's set stays as it is
    lines = (conv / "manifest.jsonl").read_text().splitlines()[:2]
    lines.append(json.dumps({"audio_filepath": "nowhere.wav", "source": "nowhere.mp3"}))
    manifest = conv / "partial.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    summary = shard(manifest, tmp_path / "o", ShardOptions(formats=("segments",), jobs=1))
    assert [e["source"] for e in summary.errors] == ["nowhere.mp3"]
    assert summary.items == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "parquet"], "unknown --format"),
        (["--format", " , "], "unknown --format"),
        (["--format", "memmap"], "memmap needs fixed-length items"),
        (["--segment", "5 minutes"], "is not a duration"),
        (["--segment", "5"], "has no unit"),
        (["--segment", "1s", "--hop", "2"], "has no unit"),
        (["--segment", "5ms"], "shorter than 10 ms"),
        (["--segment", "1s", "--hop", "1ms"], "shorter than 10 ms"),
        (["--hop", "1s"], "--hop needs --segment"),
        (["--segment", "1s", "--last", "maybe"], "'--last'"),
        (["--sr", "0"], "'--sr'"),
        (["--sr", "999"], "'--sr'"),
        (["--n-fft", "0"], "'--n-fft'"),
        (["--hop-length", "0"], "'--hop-length'"),
        (["--n-mels", "0"], "'--n-mels'"),
        (["--f-min", "9000", "--f-max", "8000"], "f-min < f-max"),
        (["--f-max", "9000"], "half of --sr"),
        (["--f-max", "nan"], "half of --sr"),
        (["--format", "mel", "--segment", "1s", "--n-mels", "128"], "no FFT bin"),
        (["--format", "mel", "--segment", "10ms"], "too short for a mel"),
        (["--log", "foo"], "'--log'"),
        (["--mel-dtype", "int8"], "'--mel-dtype'"),
        (["--shard-bytes", "inf"], "not a size"),
        (["--shard-bytes", "0"], "not a size"),
        (["--shard-bytes", "-5MB"], "not a size"),
        (["--shard-size", "0"], "'--shard-size'"),
        (["-j", "-3"], "'-j' / '--jobs'"),
        (["--min-last", "1.5"], "'--min-last'"),
        (["--min-last", "nan"], "--min-last"),
        (["--shuffle-seed", "-1"], "'--shuffle-seed'"),
        (["--codec", "mp3"], "'--codec'"),
        (["--hdf5-compression", "zstd"], "'--hdf5-compression'"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_nonsense_options_are_refused_in_one_line(converted, tmp_path, args, message):
    proc = run_prep("shard", str(converted), str(tmp_path / "o"), *args)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()  # before any work


def test_library_callers_are_checked_too(converted, tmp_path):
    bad = [
        ShardOptions(sample_rate=1),
        ShardOptions(segment=5),
        ShardOptions(segment=16000, hop=3),
        ShardOptions(formats=("mel",), mel={**MEL, "n_mels": 0}),
        ShardOptions(formats=("mel",), mel={**MEL, "f_max": 9000.0}),
        ShardOptions(shuffle_seed=-1),
        ShardOptions(jobs=-3),
    ]
    for options in bad:
        with pytest.raises(UsageError):
            shard(converted, tmp_path / "o", options)
    assert not (tmp_path / "o").exists()


def test_format_names_take_any_case_spaces_and_repeats(converted, tmp_path):
    args = ["--format", "HDF5, hdf5 ,segments", "--segment", "2s", "--last", "PAD", "-j", "1"]
    proc = run_prep("shard", str(converted), str(tmp_path / "o"), *args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.name != ".prep.lock") == [
        "errors.jsonl",
        "hdf5",
        "segments",
    ]
    assert "hdf5: 14 items; segments: 14 items" in proc.stderr


def test_formats_without_mel_do_not_import_torch():
    code = "from prep.shard import shard, ShardOptions"
    assert modules_loaded_by(code, ("torch", "torchaudio")) == []


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


def test_webdataset_shards_load_with_hugging_face_datasets(sharded, monkeypatch):
    """The README's claim: ``datasets`` reads the shards, every item with its key, metadata
    and audio, decoded through torchcodec to the samples the shard holds."""
    problem = torchcodec_load_error()
    assert problem is None, problem
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    files = sorted(str(p) for p in (sharded / "webdataset").glob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train")
    assert {c for c in ds.column_names if not c.startswith("__")} == {
        "json",
        "mel.npy",
        "txt",
        "wav",
    }
    entries = {e["key"]: e for e in iter_manifest(sharded / "webdataset" / "manifest.jsonl")}
    assert sorted(ds["__key__"]) == sorted(entries) and len(ds) == 14
    for row in ds.select(range(3)):
        entry = entries[row["__key__"]]
        assert row["json"]["source"] == entry["source"]
        decoded = row["wav"].get_all_samples()
        assert decoded.sample_rate == 16000
        with tarfile.open(sharded / "webdataset" / entry["shard"]) as tar:
            member = tar.extractfile(entry["member"]).read()
        stored, _ = sf.read(io.BytesIO(member), dtype="float32")
        np.testing.assert_array_equal(decoded.data.numpy()[0], stored)


def _listing(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_out_overlapping_src_is_refused_and_nothing_is_touched(converted, tmp_path):
    sh = tmp_path / "sh"
    run_prep("shard", str(converted), str(sh), "--segment", "1s", "-j", "1", check=True)
    (tmp_path / "link").symlink_to(sh / "segments")
    before, conv_before = _listing(sh), _listing(converted)
    cases = [
        ([str(sh / "segments"), str(sh)], "is inside OUT"),  # SRC inside OUT: was wiped
        ([str(sh / "segments" / "manifest.jsonl"), str(sh)], "is inside OUT"),
        ([str(tmp_path / "link"), str(sh)], "is inside OUT"),  # through a symlink
        ([str(converted), str(converted)], "inside the source folder"),
        ([str(converted), str(converted / "shards")], "inside the source folder"),
        ([str(converted / "manifest.jsonl"), str(converted / "x")], "inside the source folder"),
    ]
    for args, message in cases:
        proc = run_prep("shard", *args, "--segment", "500ms")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1
    assert _listing(sh) == before and _listing(converted) == conv_before


def test_a_manifest_listing_audio_inside_out_is_refused(converted, tmp_path):
    out = tmp_path / "o"
    (out / "audio").mkdir(parents=True)
    wav = next(converted.rglob("*.wav"))
    (out / "audio" / "a.wav").write_bytes(wav.read_bytes())
    manifest = tmp_path / "lists" / "list.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"audio_filepath": "../o/audio/a.wav"}) + "\n")
    for command in ("shard", "convert"):  # convert would write OUT/audio/a.wav over it
        proc = run_prep(command, str(manifest), str(out))
        assert proc.returncode == 2 and "is inside OUT" in proc.stderr, proc.stderr
    assert (out / "audio" / "a.wav").read_bytes() == wav.read_bytes()


def test_out_beside_a_manifest_is_fine(tmp_path):
    """The README's layout: ``my-manifest.jsonl`` and OUT side by side in one folder; only
    the manifest and the audio it lists are inputs, not every file of its folder."""
    make_file(tmp_path / "my-audio" / "a.mp3", seconds=1.0)
    manifest = tmp_path / "my-manifest.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "my-audio/a.mp3"}) + "\n")
    run_prep("convert", str(manifest), str(tmp_path / "wav16"), "-j", "1", check=True)
    assert (tmp_path / "wav16" / "my-audio" / "a.wav").is_file()
    sh = tmp_path / "shards"
    run_prep("shard", str(tmp_path / "wav16"), str(sh), "--format", "hdf5", check=True)
    run_prep("shard", str(manifest), str(tmp_path / "shards2"), "--format", "hdf5", check=True)
    for out in (tmp_path, tmp_path / "my-audio", tmp_path / "my-audio" / "x"):  # still refused
        proc = run_prep("convert", str(manifest), str(out))
        assert proc.returncode == 2 and "inside" in proc.stderr, proc.stderr


def test_bench_out_and_src_must_be_apart(tmp_path):
    make_file(tmp_path / "raw" / "a.flac", seconds=0.5, sr=16000, channels=1)
    proc = run_prep("bench", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "raw" / "b"))
    assert proc.returncode == 2 and "inside the source folder" in proc.stderr


def test_out_that_is_a_file_or_read_only_is_one_line(converted, tmp_path):
    (tmp_path / "file").write_text("x")
    for out, message in [
        (tmp_path / "file", "is a file, not a folder"),
        (tmp_path / "file" / "sub", "is a file, not a folder"),
    ]:
        for command in ("shard", "convert"):
            proc = run_prep(command, str(converted), str(out))
            assert proc.returncode == 2 and message in proc.stderr, proc.stderr
            assert proc.stderr.count("\n") == 1
    with _read_only_folder(tmp_path / "ro") as folder:
        for command in ("shard", "convert"):
            proc = run_prep(command, str(converted), str(folder / "out"))
            assert proc.returncode == 2 and "cannot be written" in proc.stderr, proc.stderr


@contextlib.contextmanager
def _read_only_folder(path):
    """A folder this process cannot write: a read-only mount for root, else mode 0555."""
    path.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                          capture_output=True).returncode:  # fmt: skip
            pytest.skip("root, and no read-only mount here")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@pytest.fixture(scope="module")
def transcribed(tmp_path_factory):
    """A 3.4 s file and a 0.6 s file, each with a transcript, and a labelled one."""
    root = tmp_path_factory.mktemp("tx")
    for name, seconds in [("long", 3.4), ("short", 0.6), ("other", 2.2)]:
        make_file(root / "audio" / f"{name}.wav", seconds=seconds, sr=16000, channels=1)
    lines = [
        {"audio_filepath": "audio/long.wav", "text": "the whole long sentence"},
        {"audio_filepath": "audio/short.wav", "text": "short"},
        {"audio_filepath": "audio/other.wav", "label": "dog"},
    ]
    (root / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root / "m.jsonl"


def test_segments_of_a_transcribed_file_carry_no_transcript(transcribed, tmp_path):
    out = tmp_path / "o"
    formats = ("segments", "mel", "webdataset", "hdf5", "memmap")
    summary = shard(transcribed, out, ShardOptions(formats=formats, segment=16000, mel=MEL, jobs=1))
    assert summary.failed == 0 and summary.text_dropped == 4
    assert "text left off 4 items" in summary.line()
    for name in formats:
        entries = read_manifest(out / name / "manifest.jsonl")
        texts = {(e["source"], e["offset"]): e.get("text") for e in entries}
        assert texts[("audio/short.wav", 0.0)] == "short"  # the whole file: its transcript
        assert [t for (src, _), t in texts.items() if src == "audio/long.wav"] == [None] * 4
        assert {e.get("label") for e in entries if e["source"] == "audio/other.wav"} == {"dog"}
        fmt = json.loads((out / name / "format.json").read_text())
        assert "no word timings" in fmt["text_dropped"] and fmt["text_dropped_items"] == 4
    tars = sorted(str(p) for p in (out / "webdataset").glob("*.tar"))
    for sample in wds.WebDataset(tars, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        expected = b"short" if meta["source"] == "audio/short.wav" else b""
        assert sample["txt"] == expected and ("text" in meta) == bool(expected)
    whole = shard(transcribed, tmp_path / "w", ShardOptions(formats=("hdf5",), jobs=1))
    texts = [e.get("text") for e in read_manifest(tmp_path / "w" / "hdf5" / "manifest.jsonl")]
    assert whole.text_dropped == 0 and texts == ["the whole long sentence", None, "short"]


def test_hop_longer_than_segment_on_the_command_line(converted, tmp_path):
    proc = run_prep("shard", str(converted), str(tmp_path / "o"), "--segment", "500ms", "--hop",
                    "2s", "--last", "keep", "--format", "segments,hdf5", "-j", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("segments", "hdf5"):
        entries = read_manifest(tmp_path / "o" / name / "manifest.jsonl")
        assert all(0 < e["num_samples"] <= 8000 for e in entries)
        assert all(e["offset"] * 2 == int(e["offset"] * 2) for e in entries)


def test_summary_counts_what_was_written(converted, tmp_path):
    proc = run_prep("shard", str(converted), str(tmp_path / "o"), "--segment", "1s",
                    "--format", "webdataset,memmap", "-j", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    n = len(read_manifest(tmp_path / "o" / "memmap" / "manifest.jsonl"))
    fmt = json.loads((tmp_path / "o" / "webdataset" / "format.json").read_text())
    assert fmt["num_shards"] == 1 and fmt["samples_per_shard"] == n == fmt["last_shard_samples"]
    assert f"5 sources -> {n} items" in proc.stderr
    assert f"webdataset: 1 shard of {n} items; memmap: {n} items" in proc.stderr
    again = run_prep("shard", str(converted), str(tmp_path / "o"), "--segment", "1s",
                     "--format", "webdataset,memmap", "-j", "1")  # fmt: skip
    assert "nothing to write; already complete: webdataset, memmap" in again.stderr
    sized = run_prep("shard", str(converted), str(tmp_path / "p"), "--segment", "1s",
                     "--format", "webdataset", "--shard-size", "7", "-j", "1")  # fmt: skip
    last = n - 7 * (n // 7)
    assert f"{-(-n // 7)} shards of 7 items (last {last}), {n} items in all" in sized.stderr


@pytest.mark.parametrize("content", ["not json", "[1]", "", "\xff"])
def test_a_corrupt_format_json_is_rebuilt(converted, tmp_path, content):
    out = tmp_path / "o"
    options = ShardOptions(formats=("segments", "memmap"), segment=32000, jobs=1)
    shard(converted, out, options)
    good = (out / "memmap" / "format.json").read_bytes()
    (out / "memmap" / "format.json").write_bytes(content.encode("latin-1"))
    proc = run_prep("shard", str(converted), str(out), "--segment", "2s",
                    "--format", "segments,memmap", "-j", "1")  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "memmap/format.json" in proc.stderr and "rebuilding memmap" in proc.stderr
    assert "already complete: segments" in proc.stderr
    assert (out / "memmap" / "format.json").read_bytes() == good


def test_empty_src_and_only_broken_files(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_prep("shard", str(tmp_path / "empty"), str(tmp_path / "o"))
    assert proc.returncode == 2 and "no audio files" in proc.stderr
    assert not (tmp_path / "o").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.wav").write_bytes(b"RIFF nonsense")
    (broken / "b.mp3").write_bytes(b"")
    proc = run_prep("shard", str(broken), str(tmp_path / "b"), "--format", "segments,hdf5")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no format written" in proc.stderr
    assert len(read_manifest(tmp_path / "b" / "errors.jsonl")) == 2
    assert not (tmp_path / "b" / "hdf5" / "format.json").exists()  # no empty set "complete"


def test_mixed_sample_rates_are_resampled_to_sr(tmp_path):
    for name, sr in [("a.flac", 8000), ("b.wav", 44100), ("c.ogg", 22050)]:
        make_file(tmp_path / "raw" / name, seconds=1.0, sr=sr, channels=1)
    summary = shard(tmp_path / "raw", tmp_path / "o",
                    ShardOptions(formats=("memmap",), segment=8000, jobs=1))  # fmt: skip
    assert summary.failed == 0
    entries = read_manifest(tmp_path / "o" / "memmap" / "manifest.jsonl")
    assert [e["source"] for e in entries if e["source"] != "c.ogg"] == ["a.flac"] * 2 + [
        "b.wav"
    ] * 2


@pytest.mark.slow
def test_an_item_too_short_for_the_mel_is_named(tmp_path):
    make_file(tmp_path / "raw" / "ok.wav", seconds=1.0, sr=16000, channels=1)
    make_file(tmp_path / "raw" / "tiny.wav", seconds=0.005, sr=16000, channels=1)
    proc = run_prep(
        "shard", str(tmp_path / "raw"), str(tmp_path / "o"), "--format", "mel", "-j", "1"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = read_manifest(tmp_path / "o" / "errors.jsonl")
    assert [e["source"] for e in errors] == ["tiny.wav"] and "too short for a mel" in errors[0][
        "reason"
    ]


def _file_size_limit(limit):
    """A child that may write no file bigger than ``limit`` bytes: writes past it fail
    with EFBIG (SIGXFSZ, which would kill it instead, is ignored)."""

    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@pytest.mark.parametrize(
    ("formats", "jobs", "where"),
    [
        ("segments", "2", "errors.jsonl"),  # each item fails in a worker, listed
        ("hdf5", "1", "errors.jsonl"),  # the staged batch fails in the worker
        ("memmap", "2", "errors.jsonl"),
    ],
)
def test_a_write_failure_is_one_line_naming_the_file(tmp_path, formats, jobs, where):
    make_file(tmp_path / "raw" / "a.flac", seconds=12.0, sr=16000, channels=1)
    make_file(tmp_path / "raw" / "b.flac", seconds=12.0, sr=16000, channels=1)
    proc = run_prep("shard", str(tmp_path / "raw"), str(tmp_path / "o"), "--segment", "10s",
                    "--format", formats, "-j", jobs,
                    preexec_fn=_file_size_limit(300_000))  # fmt: skip
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    assert (
        "File too large" in proc.stderr or "File too large" in (tmp_path / "o" / where).read_text()
    )
    assert not [p for p in (tmp_path / "o").rglob("*partial*")]
    assert not (tmp_path / "o" / ".staging").exists()


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file(converted, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True
        ).returncode
    ):
        pytest.skip("needs root and a tmpfs mount")
    try:
        for formats in ("segments", "hdf5", "webdataset", "memmap", "mel"):
            out = disk / formats
            proc = run_prep("shard", str(converted), str(out), "--segment", "2s",
                            "--format", formats, "-j", "2")  # fmt: skip
            assert "Traceback" not in proc.stderr and proc.returncode in (1, 2), proc.stderr
            errors = out / "errors.jsonl"  # absent when the run's own files could not be written
            text = proc.stderr + (errors.read_text() if errors.exists() else "")
            assert "No space left on device" in text, text
            assert proc.returncode == 1 or proc.stderr.count("\n") == 1
            assert not [p for p in out.rglob("*partial*")] and not (out / ".staging").exists()
            subprocess.run(["rm", "-rf", str(out)], check=True)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
