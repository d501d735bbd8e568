"""``--format lhotse_shar`` and ``--format kaldi``, each read back with Lhotse itself and with
our own reader, written in the same pass as memmap."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import make_file, run_prep

from loaders import open_dataset
from manifests import read_manifest

SR = 16000


@pytest.fixture(scope="module")
def shar_set(converted_set, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shar") / "sh"
    run_prep("shard", str(converted_set / "conv"), str(out), "--format", "memmap,lhotse_shar",
             "--segment", "2s", "--shard-size", "3", check=True)  # fmt: skip
    return out


def _memmap_rows(out: Path) -> dict[str, np.ndarray]:
    """Each item's real samples, from the memmap written in the same pass."""
    array = np.load(out / "memmap" / "audio.npy")
    return {
        e["key"]: array[e["row"]][: e["num_samples"]]
        for e in read_manifest(out / "memmap" / "manifest.jsonl")
    }


def test_lhotse_reads_the_shar_folder_back(shar_set):
    from lhotse import CutSet

    rows = _memmap_rows(shar_set)
    entries = {e["key"]: e for e in read_manifest(shar_set / "lhotse_shar" / "manifest.jsonl")}
    cuts = list(CutSet.from_shar(in_dir=shar_set / "lhotse_shar" / "shar"))
    assert sorted(c.id for c in cuts) == sorted(rows)  # one cut per item, each once
    for cut in cuts:
        audio = cut.load_audio()
        assert audio.shape == (1, len(rows[cut.id]))  # the real samples: no padding
        np.testing.assert_array_equal(np.round(audio[0] * 32768).astype(np.int16), rows[cut.id])
        assert cut.duration == entries[cut.id]["num_samples"] / SR
        assert cut.supervisions[0].text == entries[cut.id].get("text")
    assert any(c.supervisions[0].text == "hello there" for c in cuts)


def test_shar_layout_matches_lhotses_own_writer(shar_set):
    folder = shar_set / "lhotse_shar"
    fmt = json.loads((folder / "format.json").read_text())
    assert fmt["shards"] == [f"shar/recording.{i:06d}.tar" for i in range(fmt["num_shards"])]
    assert sorted(f"shar/{p.name}" for p in folder.glob("shar/cuts.*")) == fmt["cuts"]
    assert {p.name.split(".")[0] for p in (folder / "shar").iterdir()} == {"cuts", "recording"}
    with tarfile.open(folder / fmt["shards"][0]) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0].endswith(".wav") and names[1] == names[0][:-4] + ".json"
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
    with gzip.open(folder / fmt["cuts"][0], "rt") as fh:
        cut = json.loads(fh.readline())
    assert list(cut) == ["id", "start", "duration", "channel", "supervisions", "recording",
                         "custom", "type"]  # fmt: skip
    assert cut["recording"]["sources"] == [{"type": "shar", "channels": [0], "source": ""}]


def test_shar_is_repeatable_verified_and_opened_by_our_reader(shar_set, tmp_path, converted_set):
    again = tmp_path / "again"
    run_prep("shard", str(converted_set / "conv"), str(again), "--format", "memmap,lhotse_shar",
             "--segment", "2s", "--shard-size", "3", check=True)  # fmt: skip
    files = json.loads((shar_set / "lhotse_shar" / "format.json").read_text())["files"]
    assert json.loads((again / "lhotse_shar" / "format.json").read_text())["files"] == files
    assert run_prep("verify", str(again)).returncode == 0
    rows = _memmap_rows(shar_set)
    dataset = open_dataset(again / "lhotse_shar", dtype="int16")
    assert len(dataset) == len(rows)
    for i in range(len(dataset)):
        np.testing.assert_array_equal(dataset[i]["audio"].numpy(), rows[dataset[i]["key"]])
    shard = again / "lhotse_shar" / "shar" / "recording.000000.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    proc = run_prep("verify", str(again))
    assert proc.returncode != 0 and "recording.000000.tar" in proc.stdout + proc.stderr


def test_shar_flac_codec(converted_set, tmp_path):
    from lhotse import CutSet

    run_prep("shard", str(converted_set / "conv"), str(tmp_path / "o"), "--format",
             "lhotse_shar", "--codec", "flac", check=True)  # fmt: skip
    cuts = list(CutSet.from_shar(in_dir=tmp_path / "o" / "lhotse_shar" / "shar"))
    dataset = open_dataset(tmp_path / "o" / "lhotse_shar", dtype="int16")
    by_key = {dataset[i]["key"]: dataset[i]["audio"].numpy() for i in range(len(dataset))}
    for cut in cuts:
        np.testing.assert_array_equal(np.round(cut.load_audio()[0] * 32768), by_key[cut.id])


def _speaker_set(tmp_path: Path) -> Path:
    """A converted set with speakers: a Kaldi dir of two speakers converted."""
    make_file(tmp_path / "audio" / "a.mp3", seconds=3.0)
    make_file(tmp_path / "audio" / "b.flac", seconds=2.0)
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    audio = tmp_path / "audio"
    (kaldi / "wav.scp").write_text(f"a {audio / 'a.mp3'}\nb {audio / 'b.flac'}\n")
    (kaldi / "segments").write_text("u1 a 0.5 2.0\nu2 a 2.0 3.0\nu3 b 0 1.25\n")
    (kaldi / "text").write_text("u1 first words\nu2 second\nu3 third one\n")
    (kaldi / "utt2spk").write_text("u1 zed\nu2 zed\nu3 amy\n")
    run_prep("convert", str(kaldi), str(tmp_path / "conv"), check=True)
    return tmp_path / "conv"


def _sorted_by_first_field(path: Path) -> bool:
    keys = [line.split(" ", 1)[0].encode() for line in path.read_text().splitlines()]
    return keys == sorted(keys) and len(keys) == len(set(keys))


def test_kaldi_dir_of_a_converted_set_points_into_its_wavs(tmp_path):
    from lhotse.kaldi import load_kaldi_data_dir

    conv = _speaker_set(tmp_path)
    run_prep("shard", str(conv), str(tmp_path / "sh"), "--format", "kaldi,segments", check=True)
    kaldi = tmp_path / "sh" / "kaldi"
    for name in ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "utt2dur"):
        assert _sorted_by_first_field(kaldi / name), name
    speakers = [line.split()[1] for line in (kaldi / "utt2spk").read_text().splitlines()]
    assert speakers == sorted(speakers)  # utt ids start with the speaker: both sorts agree
    wavs = [line.split(" ", 1)[1] for line in (kaldi / "wav.scp").read_text().splitlines()]
    assert sorted(Path(w).name for w in wavs) == ["a.wav", "b.wav"] and Path(wavs[0]).is_absolute()
    recordings, supervisions, _ = load_kaldi_data_dir(kaldi, sampling_rate=SR)
    entries = read_manifest(tmp_path / "sh" / "kaldi" / "manifest.jsonl")
    got = sorted((s.start, round(s.duration * SR), s.text, s.speaker) for s in supervisions)
    assert got == sorted((e["offset"], e["num_samples"], e["text"], e["speaker"]) for e in entries)
    assert got[0] == (0.0, 20000, "third one", "amy")
    segments = {e["key"]: e for e in read_manifest(tmp_path / "sh" / "segments" / "manifest.jsonl")}
    dataset = open_dataset(kaldi, dtype="int16")
    for i in range(len(dataset)):
        item = dataset[i]
        path = tmp_path / "sh" / "segments" / segments[item["key"]]["audio_filepath"]
        import soundfile as sf

        np.testing.assert_array_equal(item["audio"].numpy(), sf.read(path, dtype="int16")[0])
    from lhotse import CutSet

    cuts = CutSet.from_manifests(recordings, supervisions).trim_to_supervisions()
    by_text = {item["text"]: item["audio"].numpy() for item in map(dataset.__getitem__, range(3))}
    for cut in cuts:
        audio = np.round(cut.load_audio()[0] * 32768).astype(np.int16)
        np.testing.assert_array_equal(audio, by_text[cut.supervisions[0].text])
    assert run_prep("verify", str(tmp_path / "sh")).returncode == 0


def test_kaldi_dir_of_original_audio_writes_wavs(converted_set, tmp_path):
    from lhotse.kaldi import load_kaldi_data_dir

    run_prep("shard", str(converted_set / "src"), str(tmp_path / "sh"), "--format",
             "kaldi,memmap", "--segment", "2s", check=True)  # fmt: skip
    kaldi = tmp_path / "sh" / "kaldi"
    rows = _memmap_rows(tmp_path / "sh")
    recordings, supervisions, _ = load_kaldi_data_dir(kaldi, sampling_rate=SR)
    assert len(recordings) == len(supervisions) == len(rows)
    dataset = open_dataset(kaldi, dtype="int16")
    for i in range(len(dataset)):
        np.testing.assert_array_equal(dataset[i]["audio"].numpy(), rows[dataset[i]["key"]])
    for rec in recordings:
        assert rec.num_samples == len(rows[rec.id])
    assert run_prep("verify", str(tmp_path / "sh")).returncode == 0
    wav = next((kaldi / "wav").rglob("*.wav"))
    shutil.copy(wav, tmp_path / "keep.wav")
    wav.write_bytes(wav.read_bytes()[:-10])
    proc = run_prep("verify", str(tmp_path / "sh"))
    assert proc.returncode != 0 and wav.name in proc.stdout + proc.stderr
    assert hashlib.sha256((kaldi / "wav.scp").read_bytes()).hexdigest()
