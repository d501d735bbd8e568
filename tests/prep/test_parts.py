"""Long FLAC and WAV files converted as parts spread over the workers (prep.parts)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import make_file, read_int16

from loaders.audio.dsp import iter_mono, to_int16
from loaders.audio.soundfile_backend import SoundfileReader
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.convert.split import split_candidate_bytes
from prep.parts import plan_parts

PART = 3.0
"""Seconds per part in these tests: files of a few seconds take the parts path."""
LONG_SECONDS = 2 * PART + 1  # two parts, the last one longer


def _whole_stream(path) -> np.ndarray:
    """The file as one decode-and-resample stream, without parts."""
    reader = SoundfileReader(path)
    try:
        return to_int16(np.concatenate(list(iter_mono(reader, 16000))))
    finally:
        reader.close()


@pytest.mark.parametrize(("ext", "sr", "channels"), [("flac", 22050, 1), ("wav", 48000, 2)])
def test_parts_from_two_workers_join_without_a_seam(src, out, ext, sr, channels):
    path = make_file(src / f"long.{ext}", seconds=LONG_SECONDS, sr=sr, channels=channels)
    with sf.SoundFile(path) as fh:
        frames = fh.frames
    reader = SoundfileReader(path)
    plan = plan_parts(reader.info, 16000, PART)
    reader.close()
    assert plan is not None and len(plan) == 2  # the test runs the parts path
    assert path.stat().st_size >= split_candidate_bytes(PART)  # spread over the workers

    summary = convert(src, out, ConvertOptions(part_seconds=PART, jobs=2))
    assert summary.converted == 1 and summary.failed == 0
    ours, rate = read_int16(out / "long.wav")
    whole = _whole_stream(path)
    assert rate == 16000 and len(ours) == len(whole) == round(frames * 16000 / sr)
    # the same samples but for float rounding: at most one step, on a few samples in 10^4
    difference = np.abs(ours.astype(np.int32) - whole)
    assert difference.max() <= 1 and np.count_nonzero(difference) < len(ours) * 1e-3
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert entry["num_samples"] == len(ours) and entry["source_sha256"]
    assert not list(out.rglob("*.partial"))


def test_a_long_file_has_the_same_bytes_however_its_parts_run(src, tmp_path):
    make_file(src / "long.flac", seconds=LONG_SECONDS, sr=22050, channels=2)
    make_file(src / "short.flac", seconds=2.0)
    convert(src, tmp_path / "j1", ConvertOptions(part_seconds=PART, jobs=1))
    convert(src, tmp_path / "j2", ConvertOptions(part_seconds=PART, jobs=2))
    long_wavs = [(tmp_path / d / "long.wav").read_bytes() for d in ("j1", "j2")]
    assert long_wavs[0] == long_wavs[1]
    manifests = [(tmp_path / d / "manifest.jsonl").read_text() for d in ("j1", "j2")]
    assert manifests[0] == manifests[1]

    # a name that does not say FLAC: converted whole by one worker, part after part
    (src / "long.flac").rename(src / "long.audio")
    convert(
        src, tmp_path / "renamed", ConvertOptions(part_seconds=PART, jobs=2, extensions=("audio",))
    )
    renamed = (tmp_path / "renamed" / "long.wav").read_bytes()
    assert renamed == (tmp_path / "j2" / "long.wav").read_bytes()

    # FLAC output is written by one worker, part after part: the same samples
    convert(
        src,
        tmp_path / "flac",
        ConvertOptions(part_seconds=PART, jobs=2, to="flac16", extensions=("audio",)),
    )
    flac, _ = sf.read(tmp_path / "flac" / "long.flac", dtype="int16")
    np.testing.assert_array_equal(flac, read_int16(tmp_path / "j2" / "long.wav")[0])


def test_a_truncated_long_flac_fails_by_name_and_leaves_no_partial_file(src, out, tmp_path):
    whole = make_file(tmp_path / "whole.flac", seconds=LONG_SECONDS, sr=22050, channels=1)
    data = whole.read_bytes()
    (src / "cut.flac").write_bytes(data[: int(len(data) * 0.7)])  # inside the last part
    make_file(src / "fine.flac", seconds=1.0)
    summary = convert(src, out, ConvertOptions(part_seconds=PART, jobs=2))
    assert summary.converted == 1 and summary.failed == 1
    (error,) = summary.errors
    assert error["source"] == "cut.flac" and "\n" not in error["reason"]
    assert "truncated" in error["reason"] or "decoding failed after" in error["reason"]
    assert not (out / "cut.wav").exists() and not list(out.rglob("*.partial"))
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert entry["source"] == "fine.flac"


def test_ranges_read_ahead_in_a_thread_are_the_ranges_read_inline(tmp_path):
    from prep.readahead import ReadAhead

    path = make_file(tmp_path / "a.flac", seconds=12.0, sr=22050, channels=2)
    ranges = [(0, 50_000), (100_000, 230_000), (5, 7), (200_000, 264_600)]
    reader = SoundfileReader(path)
    try:
        inline = [np.concatenate(list(reader.range_blocks(a, b, 4096))) for a, b in ranges]
        ahead = ReadAhead(reader)
        try:
            next(ahead.range_blocks(0, 100_000, 4096))  # one range left early
            threaded = [np.concatenate(list(ahead.range_blocks(a, b, 4096))) for a, b in ranges]
        finally:
            ahead.stop()
    finally:
        reader.close()
    for (a, b), x, y in zip(ranges, inline, threaded, strict=True):
        assert len(x) == b - a
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [
        ("FLAC/PCM_16", True),
        ("WAV/FLOAT", True),
        ("WAV/IMA_ADPCM", False),
        ("MP3/MPEG_LAYER_III", False),
        ("OGG/VORBIS", False),
    ],
)
def test_only_samples_coded_one_by_one_in_flac_or_wav_are_cut(fmt, cut):
    from loaders.audio.base import AudioInfo
    from loaders.audio.soundfile_backend import seeks_exactly

    exact = seeks_exactly(*fmt.split("/"))
    info = AudioInfo(44100, 2, 44100 * 600, fmt, "soundfile", "libsndfile", exact)
    assert (plan_parts(info, 16000) is not None) == cut
    short = AudioInfo(44100, 2, 44100 * 100, fmt, "soundfile", "x", exact)
    assert plan_parts(short, 16000) is None


def test_a_long_file_that_changes_while_its_parts_run_fails_by_name(src, out):
    """Appended bytes change neither the header's length nor its rate: the size does."""
    from prep.convert import _finish_split_file, _Job, _plan_split_files
    from prep.parts import convert_part
    from prep.sources import discover

    make_file(src / "long.flac", seconds=LONG_SECONDS, sr=16000, channels=1)
    out.mkdir()
    options = ConvertOptions(part_seconds=PART, jobs=1)
    (source,) = discover(src)
    (file,) = _plan_split_files([_Job(source, "long.wav")], out, options).values()
    done = [convert_part(task) for task in file.tasks]
    with open(src / "long.flac", "ab") as fh:
        fh.write(b"\0" * 100)
    result = _finish_split_file(file, done, out, options)
    assert (result.status, result.reason) == (
        "failed",
        "the file changed while it was being converted",
    )
    assert not list(out.iterdir())
