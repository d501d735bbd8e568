"""The decoder interface: backends by name, a composite ``auto``, and plug-ins.

A toy decoder registered from here (``toy_decoder``, not in the package) is used by
``prep convert --decoder toy`` and by ``auto``; the array readers never load decoding.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import toy_decoder
from helpers import REPO, make_file, modules_loaded_by, sine

from loaders.audio.errors import DecodeError
from loaders.audio.registry import DECODERS, decoder_named, open_audio
from loaders.audio.soundfile_backend import SoundfileDecoder
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.readahead import read_ahead


@pytest.fixture
def toy():
    toy_decoder.register()
    try:
        yield toy_decoder.ToyDecoder
    finally:
        toy_decoder.unregister()


def _raw16_and_wav(src, name: str = "a", sr: int = 8000) -> np.ndarray:
    """The same int16 samples as NAME.raw16 (+ .rate) and as ref/NAME.wav."""
    samples = np.rint(sine(440, 1.5, sr)[:, 0] * 32767).astype("<i2")
    samples.tofile(src / f"{name}.raw16")
    (src / f"{name}.raw16.rate").write_text(str(sr))
    (src.parent / "ref").mkdir(exist_ok=True)
    sf.write(src.parent / "ref" / f"{name}.wav", samples, sr, subtype="PCM_16")
    return samples


def test_array_readers_import_no_decoder():
    code = "import loaders.memmap, loaders.hdf5, loaders.segments, loaders.mel, loaders.webdataset"
    assert modules_loaded_by(code, ("soxr", "av", "ffmpeg", "loaders.audio")) == []


def test_a_registered_decoder_converts_by_name_to_the_bytes_of_the_same_samples(src, tmp_path, toy):
    _raw16_and_wav(src)
    options = ConvertOptions(jobs=1, decoder="toy", extensions=("raw16",))
    summary = convert(src, tmp_path / "out", options)
    assert summary.converted == 1, summary.errors
    convert(tmp_path / "ref", tmp_path / "ref_out", ConvertOptions(jobs=1, decoder="soundfile"))
    assert (tmp_path / "out" / "a.wav").read_bytes() == (
        tmp_path / "ref_out" / "a.wav"
    ).read_bytes()
    (entry,) = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert entry["decoder"] == "toy" and entry["source_format"] == "raw16"


def test_auto_uses_a_registered_decoder_where_it_can_open_and_the_others_elsewhere(
    src, tmp_path, toy
):
    _raw16_and_wav(src)
    make_file(src / "b.flac")
    summary = convert(src, tmp_path / "out", ConvertOptions(jobs=2, extensions=("raw16",)))
    assert summary.converted == 2, summary.errors
    decoders = {
        e["source"]: e["decoder"] for e in read_manifest(tmp_path / "out" / "manifest.jsonl")
    }
    assert decoders == {"a.raw16": "toy", "b.flac": "soundfile"}


def test_the_cli_offers_a_plugin_decoder_and_converts_with_it(src, tmp_path):
    _raw16_and_wav(src)
    out = tmp_path / "out"
    code = (
        "import sys, toy_decoder; toy_decoder.register(); from prep.cli import main; "
        "main(sys.argv[1:], prog_name='prep')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    args = ["convert", "--decoder", "toy", "--ext", "raw16", str(src), str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    (entry,) = read_manifest(out / "manifest.jsonl")
    assert entry["decoder"] == "toy"
    unknown = subprocess.run(
        [sys.executable, "-m", "prep.cli", *args], capture_output=True, text=True, cwd=REPO
    )  # without the plug-in: an unknown choice, one line
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert unknown.stderr.startswith("error: ") and "'toy'" in unknown.stderr


def _open_error(path, decoder: str = "auto") -> str:
    with pytest.raises(DecodeError) as caught, open_audio(path, decoder):
        pass
    return str(caught.value)


def test_when_every_backend_fails_one_error_names_each_ones_reason(tmp_path, toy):
    (tmp_path / "text.wav").write_text("not audio\n" * 100 + "!")  # an odd size: toy refuses
    (tmp_path / "text.wav.rate").write_text("8000")
    (tmp_path / "odd.raw16").write_bytes(b"\x01\x02\x03")  # no .rate: toy does not try
    reason = _open_error(tmp_path / "text.wav")
    assert "\n" not in reason and reason.startswith("not decodable: "), reason
    for backend in ("libsndfile cannot open it", "ffmpeg cannot decode it",
                    "libavcodec cannot open it", "toy reads whole int16 samples"):  # fmt: skip
        assert backend in reason, reason
    assert "toy does not read this content" in _open_error(tmp_path / "odd.raw16")
    assert _open_error(tmp_path / "text.wav", "soundfile").startswith("libsndfile cannot open it (")


def test_capabilities_not_names_decide_parts_and_read_ahead(tmp_path):
    assert decoder_named("auto").range_decoder() is SoundfileDecoder
    assert decoder_named("soundfile").range_decoder() is SoundfileDecoder
    assert decoder_named("pyav").range_decoder() is None
    assert decoder_named("ffmpeg").range_decoder() is None
    path = make_file(tmp_path / "long.flac", seconds=8.0)  # above the read-ahead threshold
    for name in DECODERS:
        with open_audio(path, name) as opened, read_ahead(opened) as reader:
            threaded = reader is not opened
            assert threaded == (opened.in_process and opened.info.frames is not None), name
            assert opened.info.exact_seeks == (opened.info.decoder == "soundfile")
