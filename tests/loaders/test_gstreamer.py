"""``--decoder gstreamer``: gst-launch-1.0 piping float32 to memory, by name only.

Its agreement with ffmpeg inside the pass band is in tests/prep/test_convert.py
(``test_agrees_with_ffmpeg_inside_the_pass_band``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import make_file, read_int16, run_prep

from loaders.audio.errors import DecodeError
from loaders.audio.registry import AUTO_MEMBERS, DECODERS, open_audio
from manifests import read_manifest


def _decode(source, decoder: str) -> np.ndarray:
    with open_audio(source, decoder) as reader:
        return np.concatenate(list(reader.blocks(4096)))


def test_gstreamer_is_a_choice_by_name_and_never_in_auto():
    assert "gstreamer" in DECODERS and "gstreamer" not in AUTO_MEMBERS


@pytest.mark.parametrize(
    ("ext", "sr", "channels"),
    [("mp3", 44100, 2), ("flac", 44100, 2), ("wav", 48000, 1), ("ogg", 48000, 2)],
)
def test_the_same_samples_as_ffmpeg_at_the_file_rate_from_a_path_or_bytes(
    tmp_path, ext, sr, channels
):
    """mp3: GStreamer trims the encoder delay and padding (LAME tag) as ffmpeg does, to
    the sample; Ogg Vorbis: it may keep one sample more at the end (of 144,000 in 3 s)."""
    path = make_file(tmp_path / f"a.{ext}", seconds=2.0, sr=sr, channels=channels)
    ours, ref = _decode(path, "gstreamer"), _decode(path, "ffmpeg")
    assert ours.shape[1] == ref.shape[1] == channels
    assert len(ours) - len(ref) in ((0, 1) if ext == "ogg" else (0,))
    np.testing.assert_allclose(ours[: len(ref)], ref, atol=1e-4)
    np.testing.assert_array_equal(_decode(path.read_bytes(), "gstreamer"), ours)


def test_a_name_gst_launch_would_parse_is_never_given_to_it(src, out):
    make_file(src / "back\\slash ! fakesink location=x.mp3")
    summary = run_prep("convert", str(src), str(out), "--decoder", "gstreamer", "-j", "1")
    assert summary.returncode == 0, summary.stderr
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert entry["decoder"] == "gstreamer"
    (wav,) = out.glob("*.wav")
    assert len(read_int16(wav)[0]) == 16000


def _damaged_flac(path, tmp_path) -> None:
    """20 s of FLAC with 64 bytes zeroed in the middle: GStreamer skips the frame (0.1 s,
    under 1%) without a word."""
    flac = bytearray(make_file(tmp_path / "long.flac", seconds=20.0).read_bytes())
    flac[len(flac) // 2 : len(flac) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(flac))


def _bad_inputs(src, tmp_path) -> dict[str, str]:
    """rel -> what its error says; gst-launch itself exits 0 on every cut file."""
    make_file(src / "good.mp3")
    (src / "random.mp3").write_bytes(np.random.default_rng(0).bytes(40_000))
    (src / "text.flac").write_text("this is not audio\n" * 200)
    for ext in ("mp3", "flac", "ogg", "wav"):
        whole = make_file(tmp_path / f"whole.{ext}", seconds=3.0).read_bytes()
        (src / f"cut.{ext}").write_bytes(whole[: len(whole) // 2])
    _damaged_flac(src / "damaged.flac", tmp_path)
    return {
        "random.mp3": "gstreamer cannot decode it (Could not determine type of stream",
        "text.flac": "gstreamer cannot decode it (This appears to be a text file",
        "cut.mp3": "truncated or corrupt: decoded",
        "cut.flac": "truncated or corrupt: decoded",
        "cut.ogg": "truncated Ogg stream (no end-of-stream page)",
        "cut.wav": "truncated: ",
        "damaged.flac": "truncated or corrupt: decoded",
    }


def test_bad_input_fails_by_name_not_as_a_hang_or_a_short_decode(src, out, tmp_path):
    expected = _bad_inputs(src, tmp_path)
    proc = run_prep("convert", str(src), str(out), "--decoder", "gstreamer", "-j", "2",
                    timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = {e["source"]: e["reason"] for e in read_manifest(out / "errors.jsonl")}
    assert errors.keys() == expected.keys()
    for rel, reason in expected.items():
        assert errors[rel].startswith(reason) and "\n" not in errors[rel], (rel, errors[rel])
        assert f"error: {rel}: " in proc.stderr
    assert [e["source"] for e in read_manifest(out / "manifest.jsonl")] == ["good.mp3"]
    assert sorted(p.name for p in out.glob("*.wav")) == ["good.wav"]  # nothing partial


def test_a_damaged_frame_is_an_error_in_a_loader_too(tmp_path):
    _damaged_flac(tmp_path / "damaged.flac", tmp_path)
    with pytest.raises(DecodeError, match="decoded .* of the 882000 frames"):
        _decode(tmp_path / "damaged.flac", "gstreamer")


def test_without_gst_launch_the_run_stops_in_one_line_before_any_work(src, out, tmp_path):
    make_file(src / "a.flac")
    bare = tmp_path / "bin"  # a PATH without gst-launch-1.0 (python is run by its path)
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    proc = run_prep("convert", str(src), str(out), "--decoder", "gstreamer", env=env)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: --decoder gstreamer: gst-launch-1.0 not found: install ")
    assert "gstreamer1.0-tools" in line
    assert not out.exists()
    auto = run_prep("convert", str(src), str(out), env=env)
    assert auto.returncode == 0, auto.stderr  # auto never needs it
