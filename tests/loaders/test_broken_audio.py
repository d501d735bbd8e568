"""Files whose audio is broken in ways a decoder does not notice: named, never converted.

NaN samples, absurd header fields, decoders that return nothing from a file that holds
audio: each must end as a line in ``errors.jsonl`` (or be decoded by another decoder),
never as silence, noise or a traceback. Checked through ``prep convert`` and ``prep shard``.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from helpers import ffmpeg, make_file, read_int16, run_prep, sine

from loaders.audio.dsp import load_mono
from loaders.audio.errors import DecodeError
from loaders.audio.registry import open_audio
from manifests import read_manifest
from prep.convert import ConvertOptions, convert

TIMEOUT = 120


def _wav_bytes(samples: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytearray:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV", subtype=subtype)
    data = bytearray(buffer.getvalue())
    assert data[36:40] == b"data"  # the plain 44-byte header the patches below assume
    return data


def _patched(data: bytearray, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _errors(out: Path) -> dict[str, str]:
    return {e["source"]: e["reason"] for e in read_manifest(out / "errors.jsonl")}


def _convert_and_shard(src: Path, tmp_path: Path) -> tuple[dict, dict, set]:
    """Errors of ``prep convert`` and ``prep shard`` over SRC, and what convert wrote."""
    proc = run_prep("convert", str(src), str(tmp_path / "out"), "-j", "2", timeout=TIMEOUT)
    assert "Traceback" not in proc.stderr, proc.stderr
    shard = run_prep("shard", str(src), str(tmp_path / "sh"), "-j", "1", timeout=TIMEOUT)
    assert "Traceback" not in shard.stderr, shard.stderr
    converted = {e["source"] for e in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    outputs = {p.name for p in (tmp_path / "out").glob("*.wav")}
    assert outputs == {Path(c).with_suffix(".wav").name for c in converted}
    return _errors(tmp_path / "out"), _errors(tmp_path / "sh"), converted


def test_nan_and_inf_samples_fail_the_file_in_convert_and_shard(src, tmp_path):
    x = sine(440, 1.0, 16000)
    make_file(src / "ok.wav")
    one_nan = x.copy()
    one_nan[8000] = np.nan
    sf.write(src / "one_nan.wav", one_nan, 16000, subtype="FLOAT")
    sf.write(src / "all_nan.wav", np.full_like(x, np.nan), 16000, subtype="FLOAT")
    inf = x.copy()
    inf[100, 0] = -np.inf
    sf.write(src / "inf.flac.wav", inf, 44100, subtype="DOUBLE")  # resampled, 64-bit
    stereo = np.repeat(x, 2, axis=1)
    stereo[4000, 1] = np.nan  # in the channel --channels first would drop
    sf.write(src / "stereo.wav", stereo, 16000, subtype="FLOAT")
    errors, shard_errors, converted = _convert_and_shard(src, tmp_path)
    assert converted == {"ok.wav"}
    for rel in ("one_nan.wav", "all_nan.wav", "inf.flac.wav", "stereo.wav"):
        assert "NaN or infinite samples" in errors[rel], errors
        assert "NaN or infinite samples" in shard_errors[rel], shard_errors
    assert "at 0.50 s" in errors["one_nan.wav"]


@pytest.mark.parametrize("decoder", ["soundfile", "pyav", "ffmpeg", "gstreamer"])
def test_every_decoder_refuses_nan_samples(tmp_path, decoder):
    x = sine(440, 1.0, 16000)
    x[500] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="NaN or infinite samples"):
        load_mono(tmp_path / "nan.wav", 16000, decoder=decoder)


def test_a_long_float_wav_with_nan_fails_when_converted_in_parts(src, out):
    x = sine(440, 125.0, 8000)  # three 60 s parts at 8 kHz
    x[-100] = np.nan
    sf.write(src / "long.wav", x, 8000, subtype="FLOAT")
    summary = convert(src, out, ConvertOptions(jobs=2))
    assert summary.failed == 1 and "NaN or infinite samples" in summary.errors[0]["reason"]
    assert not list(out.glob("*.wav")) and not list(out.glob(".*.partial"))


def test_a_32_bit_flac_is_decoded_not_dropped(src, tmp_path):
    x = sine(440, 1.0, 48000, channels=2, amp=0.9)
    sf.write(tmp_path / "f.wav", x, 48000, subtype="FLOAT")
    ffmpeg("-i", str(tmp_path / "f.wav"), "-c:a", "flac", "-sample_fmt", "s32",
           "-strict", "experimental", str(src / "s32.flac"))  # fmt: skip
    with av.open(str(src / "s32.flac")) as container:
        assert container.streams.audio[0].codec_context.format.name.startswith("s32")
    summary = convert(src, tmp_path / "out", ConvertOptions(jobs=1))
    assert summary.converted == 1, summary.errors
    ours, _ = read_int16(tmp_path / "out" / "s32.wav")
    reference = np.rint(load_mono(tmp_path / "f.wav", 16000) * 32768)
    assert len(ours) == len(reference) and np.abs(ours - reference).max() <= 2


def test_a_decoder_that_finds_no_audio_hands_the_file_to_the_next(src, tmp_path):
    """A WAV whose header never got its length (a recorder killed mid-stream says 0 bytes
    of data): libsndfile believes it and decodes nothing; the others read to the end."""
    x = sine(440, 1.0, 16000)
    (src / "streamed.wav").write_bytes(_patched(_wav_bytes(x, 16000), 40, "<I", 0))
    with open_audio(src / "streamed.wav") as reader:
        assert reader.info.decoder != "soundfile"
        assert sum(len(b) for b in reader.blocks()) == 16000
    summary = convert(src, tmp_path / "out", ConvertOptions(jobs=1))
    assert summary.converted == 1 and summary.skipped == 0
    ours, _ = read_int16(tmp_path / "out" / "streamed.wav")
    assert len(ours) == 16000 and np.abs(ours - np.rint(x[:, 0] * 32768)).max() <= 1


def test_a_wav_that_holds_no_audio_by_every_decoder_is_still_a_skip(src, out):
    (src / "empty.wav").write_bytes(bytes(_wav_bytes(np.zeros((0, 1)), 16000)))
    summary = convert(src, out, ConvertOptions(jobs=1))
    assert summary.skipped == 1 and summary.failed == 0


def test_absurd_header_fields_fail_by_name(src, tmp_path):
    x = sine(440, 0.0025, 40000)  # 100 samples: 244 bytes
    wav = _wav_bytes(x, 40000)
    assert len(wav) == 244
    make_file(src / "ok.wav")
    one_hz = _patched(_patched(wav, 24, "<I", 1), 28, "<I", 2)
    (src / "one_hz.wav").write_bytes(one_hz)  # 100 s of "audio" from 244 bytes
    (src / "slow.wav").write_bytes(_patched(_patched(wav, 24, "<I", 999), 28, "<I", 1998))
    fast = _patched(_patched(wav, 24, "<I", 1_000_000), 28, "<I", 2_000_000)
    (src / "fast.wav").write_bytes(fast)
    (src / "no_channels.wav").write_bytes(_patched(wav, 22, "<H", 0))
    many = _patched(_patched(wav, 22, "<H", 1000), 32, "<H", 2000)
    (src / "many_channels.wav").write_bytes(many)
    # (at 16 kHz mono, shard would read it without decoding: see load_int16)
    (src / "long_data.wav").write_bytes(_patched(_wav_bytes(sine(440, 1, 22050), 22050),
                                                 40, "<I", 10**9))  # fmt: skip
    errors, shard_errors, converted = _convert_and_shard(src, tmp_path)
    assert converted == {"ok.wav"}
    assert set(errors) == set(shard_errors) == {
        "one_hz.wav", "slow.wav", "fast.wav", "no_channels.wav", "many_channels.wav",
        "long_data.wav",
    }  # fmt: skip
    assert "sample rate of 1 Hz" in errors["one_hz.wav"]
    assert "sample rate of 999 Hz" in errors["slow.wav"]
    assert "sample rate of 1000000 Hz" in errors["fast.wav"]
    assert "truncated" in errors["long_data.wav"]
    assert all("\n" not in reason for reason in errors.values())
