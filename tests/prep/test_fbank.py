"""prep shard --features fbank: Kaldi-compatible filterbanks, stored like the mel, equal to
kaldi-native-fbank on speech-like audio, and the same module on the fly."""

from __future__ import annotations

import json

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch
from helpers import MEL, run_prep

from loaders import open_dataset
from loaders.mel import Fbank, LogMel, feature_module
from loaders.mel_storage import feature_frames
from manifests import read_manifest
from prep.errors import UsageError
from prep.shard import ShardOptions, shard
from prep.verify import verify

KNF_TOLERANCE = 0.01
"""Largest |ours - kaldi-native-fbank| allowed in any bin (natural-log energies); measured
0.0023 on the session's speech-like set (mean 5e-5): float32 FFT rounding."""


def _knf(samples: np.ndarray, bins: int = 80) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = bins
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, samples.astype(np.float32).tolist())  # int16 scale, as Kaldi
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).T


@pytest.fixture(scope="module")
def fbanked(converted_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("fbank") / "out"
    options = ShardOptions(
        formats=("mel", "memmap", "hdf5"), segment=32000, features="fbank", jobs=1
    )
    assert shard(converted_set / "conv", out, options).failed == 0
    return out


def test_stored_fbank_matches_kaldi_native_fbank_and_the_module(fbanked):
    array = np.load(fbanked / "memmap" / "audio.npy")
    rows = {e["key"]: array[e["row"]] for e in read_manifest(fbanked / "memmap" / "manifest.jsonl")}
    fmt = json.loads((fbanked / "mel" / "format.json").read_text())
    assert fmt["features"] == "fbank" and fmt["mel"]["features"] == "fbank"
    assert fmt["mel"]["n_mels"] == 80 and fmt["mel"]["dither"] == 0.0
    module = feature_module(fmt["mel"])
    assert isinstance(module, Fbank)
    worst = 0.0
    for entry in read_manifest(fbanked / "mel" / "manifest.jsonl"):
        stored = np.load(fbanked / "mel" / entry["mel_filepath"])
        samples = rows[entry["key"]]
        assert stored.shape == (80, 1 + (32000 - 400) // 160) == (80, 198)
        on_the_fly = module(torch.from_numpy(samples)).numpy()
        np.testing.assert_array_equal(stored, on_the_fly)  # the same code path
        float_input = module(torch.from_numpy(samples.astype(np.float32) / 32768)).numpy()
        np.testing.assert_array_equal(stored, float_input)
        worst = max(worst, float(np.abs(stored - _knf(samples)).max()))
    assert worst <= KNF_TOLERANCE


def test_fbank_reads_back_from_every_format_that_carries_it(fbanked):
    mel = open_dataset(fbanked / "mel")
    hdf5 = open_dataset(fbanked / "hdf5", with_mel=True)
    by_key = {hdf5[i]["key"]: hdf5[i]["mel"] for i in range(len(hdf5))}
    for i in range(len(mel)):
        item = mel[i]
        assert item["mel"].shape == (80, 198)
        torch.testing.assert_close(item["mel"], by_key[item["key"]], rtol=0, atol=0)
    assert verify(fbanked).ok


def test_mel_format_json_is_unchanged_by_the_fbank_option(converted_set, tmp_path):
    """The default stays log-mel, written as before: no ``features`` field anywhere."""
    options = ShardOptions(formats=("mel",), segment=32000, mel=MEL, jobs=1)
    shard(converted_set / "conv", tmp_path / "o", options)
    fmt = json.loads((tmp_path / "o" / "mel" / "format.json").read_text())
    assert "features" not in fmt and fmt["mel"] == MEL
    assert isinstance(feature_module(fmt["mel"]), LogMel)


def test_fbank_frames_follow_kaldi_framing():
    for n in (400, 401, 559, 560, 32000):
        cfg = Fbank().config
        assert feature_frames(cfg, n) == _knf(np.zeros(n)).shape[1] == 1 + (n - 400) // 160
        assert Fbank()(torch.zeros(n)).shape == (80, feature_frames(cfg, n))
    assert feature_frames(Fbank().config, 399) == 0
    unsnipped = Fbank(snip_edges=False)
    assert unsnipped(torch.zeros(1000)).shape[1] == feature_frames(unsnipped.config, 1000)


def test_fbank_options_on_the_command_line(converted_set, tmp_path):
    conv = converted_set / "conv"
    run_prep("shard", str(conv), str(tmp_path / "o"), "--format", "mel", "--segment", "1s",
             "--features", "fbank", "--fbank-bins", "40", "--fbank-dither", "1.0",
             "--fbank-frame-shift", "20", "-j", "1", check=True)  # fmt: skip
    fmt = json.loads((tmp_path / "o" / "mel" / "format.json").read_text())
    assert fmt["mel"]["n_mels"] == 40 and fmt["mel"]["hop_length"] == 320
    entry = read_manifest(tmp_path / "o" / "mel" / "manifest.jsonl")[0]
    first = np.load(tmp_path / "o" / "mel" / entry["mel_filepath"])
    assert first.shape == (40, 1 + (16000 - 400) // 320)
    run_prep("shard", str(conv), str(tmp_path / "p"), "--format", "mel", "--segment", "1s",
             "--features", "fbank", "--fbank-bins", "40", "--fbank-dither", "1.0",
             "--fbank-frame-shift", "20", "-j", "1", check=True)  # fmt: skip
    again = np.load(tmp_path / "p" / "mel" / entry["mel_filepath"])
    np.testing.assert_array_equal(first, again)  # dither seeded per item: runs repeat
    for args, message in (
        (["--fbank-frame-shift", "10.01"], "not a whole number of samples"),
        (["--fbank-high-freq", "9000"], "fbank band"),
        (["--fbank-window", "kaiser"], "'--fbank-window'"),
        (["--segment", "10ms"], "shorter than one fbank frame"),
    ):
        proc = run_prep("shard", str(conv), str(tmp_path / "x"), "--format", "mel",
                        "--features", "fbank", *args)  # fmt: skip
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    with pytest.raises(UsageError, match="--features"):
        ShardOptions(formats=("mel",), features="mfcc").validate()
