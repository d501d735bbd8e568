"""prep convert: formats, signal fidelity against ffmpeg, bad input, resume, determinism."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import REPO, ffmpeg, make_file, modules_loaded_by, read_int16, run_prep, sine

from manifests import read_manifest, validate_manifest
from prep.convert import ConvertOptions, convert
from prep.democorpus import write_audio
from prep.sources import plan_output_names

CASES = [
    ("mp3", 44100, 2),
    ("mp3", 22050, 1),
    ("ogg", 48000, 2),
    ("opus", 48000, 1),
    ("flac", 8000, 1),
    ("flac", 48000, 6),
    ("wav", 22050, 2),
]


@pytest.mark.parametrize(("ext", "sr", "channels"), CASES)
def test_any_format_becomes_16k_mono_int16_of_the_same_duration(src, out, ext, sr, channels):
    make_file(src / f"x.{ext}", seconds=2.0, sr=sr, channels=channels)
    summary = convert(src, out, ConvertOptions(jobs=1))
    assert summary.converted == 1 and summary.failed == 0
    audio, rate = read_int16(out / "x.wav")
    assert rate == 16000 and audio.dtype == np.int16
    # mp3 and opus encoders add a little padding; everything else is exact
    tolerance = 0.06 if ext in ("mp3", "opus") else 1e-3
    assert abs(len(audio) / 16000 - 2.0) <= tolerance
    assert np.abs(audio).max() > 1000


def _peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)]


@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg"])
def test_a_1khz_sine_stays_at_1khz(src, out, ext):
    write_audio(src / f"s.{ext}", sine(1000, 1.0, 44100, channels=2), 44100)
    convert(src, out, ConvertOptions(jobs=1))
    audio, rate = read_int16(out / "s.wav")
    assert abs(_peak_frequency(audio.astype(np.float64), rate) - 1000) < 2


def _in_band_snr_db(ours: np.ndarray, ref: np.ndarray, sr: int, cutoff_hz: float) -> float:
    n = min(len(ours), len(ref))
    a = np.fft.rfft(ours[:n].astype(np.float64))
    b = np.fft.rfft(ref[:n].astype(np.float64))
    band = np.fft.rfftfreq(n, 1 / sr) < cutoff_hz
    return 10 * np.log10(np.sum(np.abs(b[band]) ** 2) / np.sum(np.abs(a[band] - b[band]) ** 2))


@pytest.mark.parametrize("decoder", ["auto", "gstreamer"])
@pytest.mark.parametrize(
    ("ext", "sr", "channels"),
    [("flac", 44100, 2), ("wav", 48000, 1), ("mp3", 44100, 2), ("ogg", 48000, 2)],
)
def test_agrees_with_ffmpeg_inside_the_pass_band(src, out, tmp_path, ext, sr, channels, decoder):
    """30 dB in the band also pins the alignment: one sample off at 16 kHz costs more, so
    mp3's encoder delay and padding are trimmed alike (from the LAME tag, by each)."""
    source = make_file(src / f"x.{ext}", seconds=3.0, sr=sr, channels=channels)
    assert convert(src, out, ConvertOptions(jobs=1, decoder=decoder)).converted == 1
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert decoder == "auto" or entry["decoder"] == decoder
    ours, _ = read_int16(out / "x.wav")
    ref_path = tmp_path / "ref.wav"
    ffmpeg("-i", str(source), "-ac", "1", "-ar", "16000", "-sample_fmt", "s16", str(ref_path))
    ref, _ = read_int16(ref_path)
    assert abs(len(ours) - len(ref)) < 0.01 * 16000
    assert _in_band_snr_db(ours, ref, 16000, 0.35 * min(sr, 16000)) > 30


def test_clips_float_wav_beyond_full_scale_instead_of_wrapping(src, out):
    loud = sine(440, 0.5, 16000, channels=1, amp=1.8)
    sf.write(src / "loud.wav", loud, 16000, subtype="FLOAT")
    convert(src, out, ConvertOptions(jobs=1))
    audio, _ = read_int16(out / "loud.wav")
    expected = np.clip(np.rint(loud[:, 0] * 32768), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(audio, expected)
    assert audio.max() == 32767 and audio.min() == -32768


def test_mix_averages_channels_and_first_takes_channel_zero(src, tmp_path):
    stereo = np.stack([sine(300, 1, 16000)[:, 0], sine(300, 1, 16000, amp=0.1)[:, 0]], axis=1)
    sf.write(src / "st.wav", stereo, 16000, subtype="FLOAT")
    convert(src, tmp_path / "mix", ConvertOptions(jobs=1))
    convert(src, tmp_path / "first", ConvertOptions(jobs=1, channels="first"))
    mix, _ = read_int16(tmp_path / "mix" / "st.wav")
    first, _ = read_int16(tmp_path / "first" / "st.wav")
    np.testing.assert_allclose(mix / 32768, stereo.mean(axis=1), atol=1 / 32768)
    np.testing.assert_allclose(first / 32768, stereo[:, 0], atol=1 / 32768)


def test_flac16_output(src, out):
    make_file(src / "a.mp3", seconds=1.0)
    convert(src, out, ConvertOptions(jobs=1, to="flac16"))
    with sf.SoundFile(out / "a.flac") as f:
        assert (f.format, f.subtype, f.samplerate, f.channels) == ("FLAC", "PCM_16", 16000, 1)


def test_what_libsndfile_refuses_goes_through_ffmpeg(src, out, tmp_path):
    wav = make_file(tmp_path / "in.wav", seconds=2.0)
    ffmpeg("-i", str(wav), "-c:a", "aac", str(src / "speech.m4a"))
    summary = convert(src, out, ConvertOptions(jobs=1, extensions=("m4a",)))
    assert summary.converted == 1
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert entry["decoder"] == "ffmpeg" and abs(entry["duration"] - 2.0) < 0.1


def test_forced_ffmpeg_decoder_matches_soundfile_on_lossless_input(src, tmp_path):
    make_file(src / "a.flac", seconds=2.0)
    convert(src, tmp_path / "sf", ConvertOptions(jobs=1, decoder="soundfile"))
    convert(src, tmp_path / "ff", ConvertOptions(jobs=1, decoder="ffmpeg"))
    a, _ = read_int16(tmp_path / "sf" / "a.wav")
    b, _ = read_int16(tmp_path / "ff" / "a.wav")
    assert len(a) == len(b) and np.abs(a.astype(int) - b).max() <= 1


def _make_bad_inputs(src: Path, tmp_path: Path) -> dict[str, str]:
    """Every kind of bad input the issue lists; returns rel path -> expected outcome."""
    make_file(src / "good.mp3")
    (src / "zero.mp3").write_bytes(b"")
    (src / "random.mp3").write_bytes(np.random.default_rng(0).bytes(40_000))
    (src / "text.mp3").write_text("this is not audio\n" * 200)
    flac = make_file(tmp_path / "whole.flac", seconds=3.0)
    (src / "truncated.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    shutil.copy(flac, src / "really_flac.mp3")
    make_file(tmp_path / "w.wav")
    shutil.copy(tmp_path / "w.wav", src / "really_wav.ogg")
    sf.write(src / "hot.wav", sine(440, 0.5, 16000, amp=1.5), 16000, subtype="FLOAT")
    make_file(src / "six.flac", channels=6, sr=48000)
    sf.write(src / "u8.wav", sine(440, 0.5, 22050), 22050, subtype="PCM_U8")
    sf.write(src / "adpcm.wav", sine(440, 0.5, 22050), 22050, subtype="IMA_ADPCM")
    sf.write(src / "tiny.wav", sine(440, 0.005, 16000), 16000)
    make_file(src / "Ünïcode name with spaces.ogg")
    os.symlink(src / "good.mp3", src / "link.mp3")
    os.symlink(src / "missing.mp3", src / "dangling.mp3")
    return {
        "good.mp3": "ok",
        "zero.mp3": "empty file",
        "random.mp3": "not decodable",
        "text.mp3": "not decodable",
        "truncated.flac": "decoding failed",
        "really_flac.mp3": "ok",
        "really_wav.ogg": "ok",
        "hot.wav": "ok",
        "six.flac": "ok",
        "u8.wav": "ok",
        "adpcm.wav": "ok",
        "tiny.wav": "skip:too short",
        "Ünïcode name with spaces.ogg": "ok",
        "link.mp3": "ok",
        "dangling.mp3": "broken symlink",
    }


def test_bad_input_is_reported_by_name_and_the_rest_converted(src, out, tmp_path):
    expected = _make_bad_inputs(src, tmp_path)
    proc = run_prep("convert", str(src), str(out), "-j", "2")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    converted = {e["source"] for e in read_manifest(out / "manifest.jsonl")}
    errors = {e["source"]: e["reason"] for e in read_manifest(out / "errors.jsonl")}
    skipped = {e["source"]: e["reason"] for e in read_manifest(out / "skipped.jsonl")}
    for rel, outcome in expected.items():
        if outcome == "ok":
            assert rel in converted, (rel, errors.get(rel))
        elif outcome.startswith("skip:"):
            assert outcome[5:] in skipped[rel]
        else:
            assert outcome in errors[rel], (rel, errors.get(rel))
            assert f"error: {rel}: " in proc.stderr
    assert len(converted) + len(errors) + len(skipped) == len(expected)
    validate_manifest(out / "manifest.jsonl", required=("audio_filepath", "duration", "sha256"))


def test_truncated_mp3_and_ogg_are_reported(src, out, tmp_path):
    for ext in ("mp3", "ogg"):
        whole = make_file(tmp_path / f"whole.{ext}", seconds=4.0)
        data = whole.read_bytes()
        (src / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    summary = convert(src, out, ConvertOptions(jobs=1))
    assert summary.failed == 2
    reasons = {e["source"]: e["reason"] for e in summary.errors}
    assert "truncated" in reasons["cut.mp3"] and "truncated" in reasons["cut.ogg"]


def test_truncated_flac_fails_with_the_ffmpeg_decoder_too(src, out, tmp_path):
    flac = make_file(tmp_path / "whole.flac", seconds=3.0)
    (src / "cut.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    summary = convert(src, out, ConvertOptions(jobs=1, decoder="ffmpeg"))
    assert summary.failed == 1 and "ffmpeg reported an error" in summary.errors[0]["reason"]


def test_unreadable_file_is_reported(src, out):
    """Root reads any file, so as root the CLI runs without the DAC-override capabilities."""
    make_file(src / "ok.wav")
    make_file(src / "secret.wav")
    os.chmod(src / "secret.wav", 0o000)
    command = [sys.executable, "-m", "prep.cli", "convert", str(src), str(out), "-j", "1"]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert read_manifest(out / "errors.jsonl") == [
        {"source": "secret.wav", "reason": "permission denied"}
    ]
    assert [e["source"] for e in read_manifest(out / "manifest.jsonl")] == ["ok.wav"]


def test_colliding_names_both_survive_deterministically(src, out):
    make_file(src / "a.mp3")
    make_file(src / "a.ogg")
    make_file(src / "b.flac")
    convert(src, out, ConvertOptions(jobs=1))
    assert sorted(p.name for p in out.glob("*.wav")) == ["a.mp3.wav", "a.ogg.wav", "b.wav"]


def test_output_name_planning_resolves_every_collision():
    rels = ["a.mp3", "a.ogg", "a.mp3.flac", "A.MP3", "d/x.wav", "d/x.WAV", "y.flac"]
    names = plan_output_names(rels, ".wav")
    assert len({n.lower() for n in names.values()}) == len(rels)
    assert names["y.flac"] == "y.wav" and names["d/x.wav"].startswith("d/")
    assert plan_output_names(list(reversed(rels)), ".wav") == names


def test_layout_is_mirrored_and_transcripts_are_picked_up(src, out):
    make_file(src / "spk1" / "utt1.flac")
    (src / "spk1" / "utt1.txt").write_text("hello world\n", encoding="utf-8")
    make_file(src / "spk2" / "deeper" / "utt2.MP3")
    (src / "spk2" / "deeper" / "utt2.lab").write_text("ünïcode text", encoding="utf-8")
    convert(src, out, ConvertOptions(jobs=1))
    entries = {e["source"]: e for e in read_manifest(out / "manifest.jsonl")}
    assert entries["spk1/utt1.flac"]["audio_filepath"] == "spk1/utt1.wav"
    assert entries["spk1/utt1.flac"]["text"] == "hello world"
    assert entries["spk2/deeper/utt2.MP3"]["text"] == "ünïcode text"
    assert (out / "spk2" / "deeper" / "utt2.wav").is_file()


def test_manifest_as_source_passes_unknown_keys_through(src, out):
    make_file(src / "audio" / "a.flac")
    make_file(src / "audio" / "b.mp3")
    lines = [
        {"audio_filepath": "audio/a.flac", "label": "robin", "speaker": 7},
        {"audio_filepath": str(src / "audio" / "b.mp3"), "text": "from the manifest"},
        {"audio_filepath": "audio/missing.wav"},
    ]
    (src / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = convert(src / "in.jsonl", out, ConvertOptions(jobs=1))
    assert summary.converted == 2 and summary.failed == 1
    entries = {e["source"]: e for e in read_manifest(out / "manifest.jsonl")}
    assert entries["audio/a.flac"]["label"] == "robin" and entries["audio/a.flac"]["speaker"] == 7
    assert entries["audio/b.mp3"]["text"] == "from the manifest"
    assert summary.errors == [{"source": "audio/missing.wav", "reason": "file not found"}]


def test_duration_filters_skip_and_count(src, out):
    for name, seconds in (("short.wav", 0.5), ("mid.wav", 2.0), ("long.wav", 5.0)):
        make_file(src / name, seconds=seconds, sr=16000, channels=1)
    summary = convert(src, out, ConvertOptions(jobs=1, min_duration=1.0, max_duration=4.0))
    assert (summary.converted, summary.skipped) == (1, 2)
    skipped = {e["source"]: e["reason"] for e in read_manifest(out / "skipped.jsonl")}
    assert "below --min-duration" in skipped["short.wav"]
    assert "above --max-duration" in skipped["long.wav"]
    assert not (out / "long.wav").exists() and not (out / "short.wav").exists()


def _tree_digest(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _mixed_set(src: Path) -> None:
    for i in range(8):
        ext = ("mp3", "ogg", "flac", "wav")[i % 4]
        make_file(src / f"d{i % 2}" / f"f{i}.{ext}", seconds=0.5 + i * 0.3, sr=44100)


def test_output_is_byte_identical_whatever_the_number_of_jobs(src, tmp_path):
    _mixed_set(src)
    convert(src, tmp_path / "j1", ConvertOptions(jobs=1))
    convert(src, tmp_path / "j2", ConvertOptions(jobs=2))
    a, b = _tree_digest(tmp_path / "j1"), _tree_digest(tmp_path / "j2")
    assert a.keys() == b.keys() and a == b
    assert len([k for k in a if k.endswith(".wav")]) == 8


def test_rerun_skips_what_is_current_and_redoes_what_changed(src, out):
    _mixed_set(src)
    first = convert(src, out, ConvertOptions(jobs=1))
    assert first.converted == 8
    before = _tree_digest(out)
    again = convert(src, out, ConvertOptions(jobs=1))
    assert (again.converted, again.already_done) == (0, 8)
    assert _tree_digest(out) == before
    os.utime(src / "d0" / "f0.mp3", ns=(1, 1))
    assert convert(src, out, ConvertOptions(jobs=1)).converted == 1
    assert convert(src, out, ConvertOptions(jobs=1, overwrite=True)).converted == 8
    assert convert(src, out, ConvertOptions(jobs=1, quality="VHQ")).converted == 8


def test_a_killed_run_leaves_no_partial_file_and_a_rerun_finishes(src, tmp_path):
    _mixed_set(src)
    make_file(src / "long.flac", seconds=60.0, sr=48000)
    clean = tmp_path / "clean"
    convert(src, clean, ConvertOptions(jobs=1))
    out = tmp_path / "killed"
    for delay in (0.5, 1.0, 1.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "prep.cli", "convert", str(src), str(out), "-j", "1"],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = {e["audio_filepath"] for e in read_manifest(clean / "manifest.jsonl")}
        for wav in out.rglob("*.wav"):  # whatever exists at a final name is complete
            rel = wav.relative_to(out).as_posix()
            assert rel in finished
            assert wav.read_bytes() == (clean / rel).read_bytes()
    summary = convert(src, out, ConvertOptions(jobs=1))
    assert summary.failed == 0
    assert not list(out.rglob("*.partial")) and not (out / "convert.journal.jsonl").exists()
    assert _tree_digest(out) == _tree_digest(clean)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "mp3"], "'--to'"),
        (["--sr", "-5"], "not a usable sample rate"),
        (["--min-duration", "-1"], "non-negative"),
        (["--min-duration", "5", "--max-duration", "1"], "larger than --max-duration"),
    ],
)
def test_nonsense_options_are_refused_in_one_line(src, out, args, message):
    make_file(src / "a.wav")
    proc = run_prep("convert", *args, str(src), str(out))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not out.exists()


def test_missing_src_and_out_inside_src_are_refused(src, tmp_path):
    make_file(src / "a.wav")
    for args, message in (
        ([str(tmp_path / "nope"), str(tmp_path / "o")], "no such file or folder"),
        ([str(src), str(src)], "inside the source folder"),
        ([str(src), str(src / "converted")], "inside the source folder"),
    ):
        proc = run_prep("convert", *args)
        assert proc.returncode == 2 and message in proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in src.iterdir()) == ["a.wav"]


def test_sources_are_never_modified(src, out):
    _mixed_set(src)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.rglob("*") if p.is_file()}
    convert(src, out, ConvertOptions(jobs=2))
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.rglob("*") if p.is_file()}
    assert before == after


def test_quiet_off_a_terminal_prints_only_the_summary(src, out):
    _mixed_set(src)
    proc = run_prep("convert", str(src), str(out), check=True)
    assert proc.stdout == ""
    assert proc.stderr.strip().startswith("converted 8,") and proc.stderr.count("\n") == 1


def test_vbr_mp3_decoded_in_blocks_equals_one_whole_read(tmp_path):
    """python-soundfile re-seeks after each read; mpg123 seeks in VBR mp3 are approximate."""
    from loaders.audio.registry import open_audio

    path = make_file(tmp_path / "vbr.mp3", seconds=4.0)  # soundfile's LAME writes VBR
    whole = sf.read(path, dtype="float32", always_2d=True)[0]
    for block_frames in (1000, 4096, 65536):
        with open_audio(path) as reader:
            blocks = np.concatenate(list(reader.blocks(block_frames)))
        np.testing.assert_array_equal(blocks, whole)


def test_the_convert_path_does_not_import_torch_or_click_in_the_library():
    code = "import prep.convert, loaders.audio.registry, loaders.audio.dsp"
    assert modules_loaded_by(code, ("torch", "torchaudio", "click")) == []


def test_wav_output_is_the_standard_pcm16_file_libsndfile_writes(src, out, tmp_path):
    make_file(src / "a.flac", seconds=1.5)
    convert(src, out, ConvertOptions(jobs=1))
    samples, rate = read_int16(out / "a.wav")
    sf.write(tmp_path / "ref.wav", samples, rate, subtype="PCM_16")
    assert (out / "a.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()


@pytest.mark.parametrize(("ext", "channels"), [("ogg", 2), ("opus", 1), ("opus", 2)])
def test_vorbis_and_opus_go_through_pyav_and_agree_with_libsndfile(src, tmp_path, ext, channels):
    make_file(src / f"a.{ext}", seconds=2.0, sr=48000, channels=channels)
    convert(src, tmp_path / "auto", ConvertOptions(jobs=1))
    convert(src, tmp_path / "sf", ConvertOptions(jobs=1, decoder="soundfile"))
    (entry,) = read_manifest(tmp_path / "auto" / "manifest.jsonl")
    codec = "vorbis" if ext == "ogg" else "opus"
    assert entry["decoder"] == "pyav" and entry["source_format"] == f"ogg/{codec}"
    ours, _ = read_int16(tmp_path / "auto" / "a.wav")
    ref, _ = read_int16(tmp_path / "sf" / "a.wav")
    assert len(ours) == len(ref)  # the same pre-skip and end trimming
    assert _in_band_snr_db(ours, ref, 16000, 7600) > 50  # two decoders of the same stream


def test_pyav_reports_bad_input_in_one_line(src, out):
    (src / "random.ogg").write_bytes(np.random.default_rng(1).bytes(20_000))
    (src / "text.opus").write_text("not audio\n" * 100)
    summary = convert(src, out, ConvertOptions(jobs=1, decoder="pyav"))
    assert summary.failed == 2
    for error in summary.errors:
        assert "\n" not in error["reason"] and error["reason"]


def _blocks(reader, frames: int = 4096) -> np.ndarray:
    return np.concatenate([np.array(b) for b in reader.blocks(frames)])


@pytest.mark.parametrize(("ext", "channels"), [("ogg", 2), ("opus", 1), ("opus", 6)])
def test_pyav_blocks_of_any_size_hold_every_decoded_sample_in_order(tmp_path, ext, channels):
    import av

    from loaders.audio.pyav_backend import PyAVReader

    path = make_file(tmp_path / f"a.{ext}", seconds=1.3, sr=48000, channels=channels)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    whole = np.concatenate(frames, axis=1).T  # libav's own frames, [n, channels]
    for size in (1, 97, len(frames[0].T), 4096, 1 << 20):  # below, at and above one frame
        reader = PyAVReader(path)
        try:
            blocks = [np.array(b) for b in reader.blocks(size)]
        finally:
            reader.close()
        assert all(len(b) == size for b in blocks[:-1]) and 0 < len(blocks[-1]) <= size
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_reading_ahead_in_a_thread_yields_the_same_blocks(tmp_path, ext):
    from loaders.audio.registry import open_audio
    from prep.readahead import ReadAhead

    path = make_file(tmp_path / f"long.{ext}", seconds=7.0)
    with open_audio(path) as reader:
        inline = _blocks(reader)
    with open_audio(path) as reader:
        ahead = ReadAhead(reader)
        try:
            threaded = _blocks(ahead)
        finally:
            ahead.stop()
    np.testing.assert_array_equal(threaded, inline)


def test_read_ahead_stops_its_thread_when_the_consumer_leaves_early(tmp_path):
    import threading

    from loaders.audio.registry import open_audio
    from prep.readahead import read_ahead

    path = make_file(tmp_path / "long.flac", seconds=8.0)  # above the read-ahead threshold
    before = threading.active_count()
    with open_audio(path) as opened, read_ahead(opened) as reader:
        assert type(reader).__name__ == "ReadAhead"
        first = next(iter(reader.blocks(1024)))
        assert threading.active_count() == before + 1
    assert len(first) == 1024 and threading.active_count() == before


def test_read_ahead_hands_a_decode_error_to_the_consumer(src, out, tmp_path):
    flac = make_file(tmp_path / "whole.flac", seconds=16.0)
    (src / "cut.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    summary = convert(src, out, ConvertOptions(jobs=1))
    reason = summary.errors[0]["reason"]  # raised in the decoder thread, caught in the worker
    assert summary.failed == 1 and ("decoding failed after" in reason or "truncated" in reason)
    assert not list(out.glob("*.wav")) and not list(out.glob("*.partial*"))
