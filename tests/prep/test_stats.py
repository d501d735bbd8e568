"""prep stats: what a converted folder, a shard set or one format holds, labelled by what
it is, with a duration histogram whose bins fit the data."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from helpers import CORE_FORMATS, make_file, run_prep

from prep.convert import ConvertOptions, convert
from prep.stats import collect_stats, render_stats

REAL_SECONDS = 0.7 + 2.3 + 5.0 + 11.2 + 3.1
"""The audio of the session's converted set (conftest ``converted_set``), before any padding."""


def _stats(*args: str) -> dict:
    return json.loads(run_prep("stats", *args, "--json", check=True).stdout)


def _manifest(tmp_path, durations) -> str:
    path = tmp_path / "m.jsonl"
    lines = [
        json.dumps({"audio_filepath": f"{i}.wav", "duration": d}) for i, d in enumerate(durations)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_converted_folder_reports_its_output_and_its_sources_apart(converted_set):
    stats = _stats(str(converted_set / "conv"))
    assert stats["kind"] == "convert" and stats["items"] == stats["files"] == 5
    assert (stats["sample_rates"], stats["channels"]) == ({"16000": 5}, {"1": 5})  # mono, --sr
    sources = stats["sources"]
    assert (sources["sample_rates"], sources["channels"]) == ({"44100": 5}, {"2": 5})
    assert sorted(sources["formats"].values()) == [1, 4] and sources["files"] == 5
    assert any(name.startswith("MP3") for name in sources["formats"])
    text = run_prep("stats", str(converted_set / "conv"), check=True).stdout
    assert "  converted    16000 Hz: 5; mono: 5\n" in text
    (sources_line,) = [line for line in text.splitlines() if line.startswith("  sources ")]
    assert sources_line.startswith("  sources      44100 Hz: 5; stereo: 5; ")
    assert ": 4" in sources_line and "MP3" in sources_line


def test_utterances_of_a_converted_manifest_are_the_items(tmp_path):
    src = tmp_path / "src"
    make_file(src / "long.wav", seconds=12.0, sr=16000, channels=1)
    make_file(src / "short.flac", seconds=2.0, sr=22050, channels=1)
    lines = [
        {"audio_filepath": "long.wav", "offset": o, "duration": d, "text": t}
        for o, d, t in [(0.0, 3.0, "one"), (4.0, 3.0, "two"), (8.0, 4.0, "three")]
    ] + [{"audio_filepath": "short.flac", "duration": 2.0, "text": "whole"}]
    (src / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert convert(src / "train.jsonl", tmp_path / "conv", ConvertOptions(jobs=1)).failed == 0
    stats = _stats(str(tmp_path / "conv"))
    assert (stats["items"], stats["files"]) == (4, 2)
    assert math.isclose(stats["hours"] * 3600, 12.0, abs_tol=1e-3)
    assert stats["sample_rates"] == {"16000": 2} and stats["sources"]["files"] == 2
    assert stats["sources"]["sample_rates"] == {"16000": 1, "22050": 1}
    text = run_prep("stats", str(tmp_path / "conv"), check=True).stdout
    assert "  items        4 (utterances of 2 files)\n" in text


def test_a_shard_set_reports_each_format_not_its_padded_wavs(sharded_set):
    stats = _stats(str(sharded_set))
    assert stats["kind"] == "shard" and stats["items"] == 14
    assert math.isclose(stats["hours"] * 3600, REAL_SECONDS, abs_tol=1e-3)  # not 14 x 2 s
    formats = {f["format"]: f for f in stats["formats"]}
    assert sorted(formats) == sorted(CORE_FORMATS)
    for name, fmt in formats.items():
        assert fmt["items"] == 14 and fmt["path"] == name and fmt["disk_bytes"] > 0
        assert math.isclose(fmt["hours"] * 3600, REAL_SECONDS, abs_tol=1e-3)
        assert fmt["item"]["seconds"] == 2.0 and fmt["item"]["samples"] == 32000
    assert formats["hdf5"]["item"]["audio"] == {"dtype": "int16", "shape": [32000]}
    assert formats["hdf5"]["item"]["mel"] == {"dtype": "float32", "shape": [80, 201]}
    assert formats["mel"]["item"]["audio"] is None and formats["memmap"]["item"]["mel"] is None
    assert formats["webdataset"]["item"]["mel"] == {"dtype": "float32", "shape": [80, 201]}
    assert sum(f["disk_bytes"] for f in formats.values()) <= stats["disk_bytes"]
    text = run_prep("stats", str(sharded_set), check=True).stdout
    assert "prep shard output, 5 formats" in text
    hdf5_line = next(line for line in text.splitlines() if line.strip().startswith("hdf5"))
    assert "14 items" in hdf5_line and "2.00 s" in hdf5_line
    assert "audio int16 [32000]" in hdf5_line and "mel float32 [80, 201]" in hdf5_line


def test_one_format_folder_is_one_format(sharded_set):
    stats = _stats(str(sharded_set / "hdf5"))
    assert (stats["kind"], stats["format"], stats["items"]) == ("format", "hdf5", 14)
    assert math.isclose(stats["hours"] * 3600, REAL_SECONDS, abs_tol=1e-3)
    assert stats["item"]["mel"] == {"dtype": "float32", "shape": [80, 201]}
    assert stats["sample_rates"] == {"16000": 14}
    text = run_prep("stats", str(sharded_set / "mel"), check=True).stdout
    assert "mel float32 [80, 201]" in text and "audio int16" not in text


def test_items_all_one_length_are_one_bin(tmp_path):
    stats = _stats(_manifest(tmp_path, [5.0] * 6))
    assert stats["histogram"]["counts"] == [6] and stats["histogram"]["edges"] == [5.0, 5.0]
    text = run_prep("stats", _manifest(tmp_path, [5.0] * 6), check=True).stdout
    assert "all 6 items 5.00 s" in text and "█" not in text


def _rows(text: str) -> list[int]:
    """The item counts of the text histogram's rows."""
    lines = text.split("duration histogram", 1)[1].splitlines()[1:]
    return [int(line.split()[1]) for line in lines]


@pytest.mark.parametrize("bins", [1, 3, 7, 20])
@pytest.mark.parametrize(
    "durations",
    [
        [0.7, 2.3, 5.0, 11.2, 3.1],
        [2.0, 2.0000625],
        [0.3, 0.30000001, 0.9],
        list(np.round(np.random.default_rng(0).gamma(2.0, 3.0, 500), 6)),
        [1234.5, 7.25, 3600.0],
    ],
)
def test_bins_cover_the_data_at_readable_edges(durations, bins, tmp_path):
    stats = collect_stats(_manifest(tmp_path, [float(d) for d in durations]), bins)
    edges, counts = stats["histogram"]["edges"], stats["histogram"]["counts"]
    assert 1 <= len(counts) <= bins and sum(counts) == len(durations)
    assert counts[0] and counts[-1]  # no empty bins at either end
    assert edges[0] <= min(durations) and edges[-1] >= max(durations)
    steps = np.diff(edges)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]) + 1e-9)
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), edges
    assert all(math.isclose(e / steps[0], round(e / steps[0])) for e in edges), edges
    assert _rows(render_stats(stats)) == counts  # the text shows the same numbers


def test_a_format_an_interrupted_run_left_is_named_not_decoded(sharded_set, tmp_path):
    shutil.copytree(sharded_set, tmp_path / "sh")
    (tmp_path / "sh" / "hdf5" / "format.json").rename(tmp_path / "sh" / "hdf5" / ".params.json")
    stats = _stats(str(tmp_path / "sh"))
    assert stats["unfinished_formats"] == ["hdf5"] and len(stats["formats"]) == 4
    text = run_prep("stats", str(tmp_path / "sh"), check=True).stdout
    assert "hdf5" in text and "unfinished: no format.json" in text
