"""The JSONL manifest contract: streaming reads, atomic writes, journals, validation."""

from __future__ import annotations

import json

import pytest
from helpers import modules_loaded_by

from manifests import (
    ManifestAppender,
    ManifestError,
    atomic_path,
    iter_journal,
    iter_manifest,
    read_manifest,
    remove_partials,
    resolve_audio_path,
    validate_entry,
    validate_manifest,
    write_manifest,
)


def test_round_trip_keeps_unknown_keys_order_and_unicode(tmp_path):
    entries = [
        {"audio_filepath": "a/ü.wav", "duration": 1.5, "text": "grüße", "custom": {"x": [1, 2]}},
        {"audio_filepath": "b.wav", "duration": 2, "label": "robin"},
    ]
    path = tmp_path / "m.jsonl"
    assert write_manifest(path, entries) == 2
    assert read_manifest(path) == entries
    assert "grüße" in path.read_text(encoding="utf-8")
    assert list(json.loads(line) for line in path.read_text().splitlines()) == entries


def test_iter_manifest_streams_and_names_the_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio_filepath": "a.wav"}\n\n[1, 2]\n')
    stream = iter_manifest(path)
    assert next(stream) == {"audio_filepath": "a.wav"}
    with pytest.raises(ManifestError, match=r"m.jsonl:3: line is not a JSON object"):
        next(stream)
    path.write_text('{"audio_filepath": \n')
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(path)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [{"audio_filepath": "old.wav"}])

    def entries():
        yield {"audio_filepath": "new.wav"}
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError):
        write_manifest(path, entries())
    assert read_manifest(path) == [{"audio_filepath": "old.wav"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_remove_partials_sweeps_only_our_temporaries(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "sub" / "x.wav") as tmp:
        tmp.write_bytes(b"half")
        leftover = tmp.with_name(".y.wav.dead.partial")
        leftover.write_bytes(b"from a killed run")
        raise KeyboardInterrupt
    (tmp_path / "keep.partial").write_text("not hidden, not ours")
    assert remove_partials(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["keep.partial"]


def test_journal_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with ManifestAppender(path) as journal:
        journal.append({"source": "a"})
        journal.append({"source": "b"})
    with open(path, "a") as fh:
        fh.write('{"source": "c", "dur')
    assert [e["source"] for e in iter_journal(path)] == ["a", "b"]
    assert list(iter_journal(tmp_path / "missing.jsonl")) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, "missing field 'audio_filepath'"),
        ({"audio_filepath": 3}, "'audio_filepath' has type int"),
        ({"audio_filepath": "a", "duration": -1.0}, "'duration' is negative"),
        ({"audio_filepath": "a", "duration": float("nan")}, "not finite"),
        ({"audio_filepath": "a", "sample_rate": 0}, "not positive"),
        ({"audio_filepath": "a", "num_samples": True}, "'num_samples' has type bool"),
    ],
)
def test_validation_names_the_field(entry, message):
    with pytest.raises(ManifestError, match=message):
        validate_entry(entry)


def test_validate_manifest_counts_and_reports_the_entry(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [{"audio_filepath": "a", "duration": 1.0}, {"duration": 1.0}])
    with pytest.raises(ManifestError, match="entry 2: missing field 'audio_filepath'"):
        validate_manifest(path)
    write_manifest(path, [{"audio_filepath": "a", "duration": 1.0, "extra": None}])
    assert validate_manifest(path) == 1


def test_audio_paths_are_relative_to_the_manifest_folder(tmp_path):
    manifest = tmp_path / "data" / "m.jsonl"
    assert resolve_audio_path(manifest, {"audio_filepath": "x/a.wav"}) == tmp_path / "data/x/a.wav"
    assert resolve_audio_path(manifest, {"audio_filepath": "/abs/a.wav"}).as_posix() == "/abs/a.wav"


def test_manifests_imports_neither_prep_nor_loaders():
    assert modules_loaded_by("import manifests", ("prep", "loaders", "torch")) == []
