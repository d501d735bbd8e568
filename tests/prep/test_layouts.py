"""Kaldi data dirs and Lhotse manifests as SRC: each utterance's span, text and speaker kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_file, modules_loaded_by, run_prep

from manifests import read_manifest

SR = 16000


def _kaldi_dir(tmp_path: Path) -> Path:
    """Two recordings (an absolute path and one relative to the dir), three segments, a
    command line in wav.scp."""
    audio = tmp_path / "audio"
    make_file(audio / "a.flac", seconds=3.0)
    make_file(audio / "b.ogg", seconds=2.0, sr=22050, channels=1)
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text(
        f"recA {audio / 'a.flac'}\nrecB ../audio/b.ogg\nrecC sox x.wav -t wav - |\n"
    )
    (kaldi / "segments").write_text(
        "spk1-u1 recA 0.25 1.5\nspk1-u2 recA 1.5 2.75\nspk2-u3 recB 0.5 -1\nspk2-u4 recC 0 1\n"
    )
    (kaldi / "text").write_text("spk1-u1 hello there\nspk1-u2 general kenobi\nspk2-u3 bye\n")
    (kaldi / "utt2spk").write_text("spk1-u1 spk1\nspk1-u2 spk1\nspk2-u3 spk2\nspk2-u4 spk2\n")
    return kaldi


def test_kaldi_dir_converts_with_spans_texts_and_speakers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")  # not the dir's own folder: relative paths from it
    kaldi = _kaldi_dir(tmp_path)
    proc = run_prep("convert", str(kaldi), str(tmp_path / "out"), "--jobs", "1")
    assert proc.returncode == 1, proc.stderr  # the command line failed, the others done
    entries = sorted(read_manifest(tmp_path / "out" / "manifest.jsonl"), key=lambda e: e["utt_id"])
    got = [(e["utt_id"], e["offset"], e["duration"], e.get("text"), e["speaker"]) for e in entries]
    assert got == [
        ("spk1-u1", 0.25, 1.25, "hello there", "spk1"),
        ("spk1-u2", 1.5, 1.25, "general kenobi", "spk1"),
        ("spk2-u3", 0.5, 1.5, "bye", "spk2"),
    ]
    assert all(e["num_samples"] == round(e["duration"] * SR) for e in entries)
    errors = read_manifest(tmp_path / "out" / "errors.jsonl")
    assert len(errors) == 1 and errors[0]["source"] == "wav.scp line 3"
    assert "a command" in errors[0]["reason"] and "recC" in errors[0]["reason"]


def test_kaldi_dir_shards_directly_with_texts(tmp_path):
    kaldi = _kaldi_dir(tmp_path)
    proc = run_prep("shard", str(kaldi), str(tmp_path / "sh"), "--format", "segments")
    assert proc.returncode == 1, proc.stderr
    entries = read_manifest(tmp_path / "sh" / "segments" / "manifest.jsonl")
    got = sorted((e["offset"], e["num_samples"], e.get("text"), e["speaker"]) for e in entries)
    assert got == [
        (0.25, 20000, "hello there", "spk1"),
        (0.5, 24000, "bye", "spk2"),
        (1.5, 20000, "general kenobi", "spk1"),
    ]


def _lhotse_cuts(tmp_path: Path, name: str = "cuts.jsonl.gz") -> tuple[Path, list]:
    """A cuts manifest made with lhotse's own API: two supervised spans of one file, a
    whole second file with one supervision."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    audio = tmp_path / "audio"
    make_file(audio / "long.flac", seconds=4.0, sr=SR, channels=1)
    make_file(audio / "short.mp3", seconds=1.5, channels=1)
    recordings = RecordingSet.from_recordings(
        Recording.from_file(audio / n, recording_id=n.split(".")[0])
        for n in ("long.flac", "short.mp3")
    )
    supervisions = SupervisionSet.from_segments(
        [
            SupervisionSegment(
                "long-1", "long", 0.5, 1.0, text="one", speaker="ann", language="en"
            ),  # noqa: E501
            SupervisionSegment("long-2", "long", 2.0, 1.5, text="two", speaker="bob"),
            SupervisionSegment("short-1", "short", 0.0, 1.0, text="three", speaker="ann"),
        ]
    )
    cuts = CutSet.from_manifests(recordings, supervisions).trim_to_supervisions()
    path = tmp_path / "lhotse" / name
    path.parent.mkdir()
    cuts.to_file(path)
    return path, list(cuts)


@pytest.mark.parametrize("name", ["cuts.jsonl.gz", "cuts.jsonl"])
def test_lhotse_cuts_convert_with_spans_and_texts(tmp_path, name):
    manifest, cuts = _lhotse_cuts(tmp_path, name)
    run_prep("convert", str(manifest), str(tmp_path / "out"), "--jobs", "1", check=True)
    entries = read_manifest(tmp_path / "out" / "manifest.jsonl")
    got = sorted(
        (e["utt_id"], e["offset"], e["duration"], e["text"], e["speaker"]) for e in entries
    )  # noqa: E501
    want = sorted(
        (c.supervisions[0].id, c.start, c.duration, c.supervisions[0].text,
         c.supervisions[0].speaker)
        for c in cuts
    )  # fmt: skip
    assert got == want
    assert [e.get("language") for e in entries if e["utt_id"] == "long-1"] == ["en"]


def test_lhotse_recordings_manifest_is_whole_files(tmp_path):
    from lhotse import Recording, RecordingSet

    make_file(tmp_path / "audio" / "x.wav", seconds=1.0)
    recs = RecordingSet.from_recordings([Recording.from_file(tmp_path / "audio" / "x.wav")])
    recs.to_file(tmp_path / "recordings.jsonl.gz")
    run_prep("convert", str(tmp_path / "recordings.jsonl.gz"), str(tmp_path / "out"), check=True)
    (entry,) = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert entry["num_samples"] == SR and entry["offset"] == 0.0


def test_lhotse_cut_of_one_channel_is_refused_not_mixed(tmp_path):
    from lhotse import MonoCut, Recording

    make_file(tmp_path / "audio" / "stereo.wav", seconds=1.0, channels=2)
    rec = Recording.from_file(tmp_path / "audio" / "stereo.wav")
    cut = MonoCut("c1", start=0.0, duration=1.0, channel=1, recording=rec)
    manifest = tmp_path / "lhotse" / "cuts.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps(cut.to_dict()) + "\n")
    proc = run_prep("convert", str(manifest), str(tmp_path / "out"))
    assert proc.returncode == 1
    (error,) = read_manifest(tmp_path / "out" / "errors.jsonl")
    assert "channel 1 of 2" in error["reason"] and error["source"] == "cuts.jsonl line 1"


def test_the_layouts_and_formats_do_not_import_lhotse():
    code = (
        "import prep.convert, prep.shard, prep.sources, loaders\n"
        "from prep.writers import get_writer\n"
        "from loaders.formats import reader_class\n"
        "[get_writer(n) for n in ('lhotse_shar', 'kaldi')]\n"
        "[reader_class(n) for n in ('lhotse_shar', 'kaldi')]"
    )
    assert modules_loaded_by(code, ("lhotse",)) == []
