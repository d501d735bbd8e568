"""NVIDIA DALI pipelines (loaders.dali): the same samples as our readers, every item once
per epoch across ranks, and log-mel in the pipeline matching LogMel. DALI runs on the CPU
here (``device_id=None``); each test has a GPU variant that runs where CUDA is present."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import CORE_FORMATS, MEL, modules_loaded_by

from loaders import LogMel, batch_loader, open_dataset
from loaders.collate import padding_mask
from loaders.sample import FormatError

dali = pytest.importorskip("loaders.dali", reason="NVIDIA DALI (the dali extra) is not installed")

DEVICES = [
    "cpu",
    pytest.param(
        "gpu",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA device: the GPU pipeline needs one"
        ),
    ),
]
BATCH_SIZES = (3, 4, 5)  # none divides the set's 14 items


@pytest.fixture(scope="module")
def sharded(sharded_set):
    return sharded_set


def _ours(folder) -> dict:
    """Key -> what our own reader yields for it (int16 audio, or the stored mel)."""
    options = {} if folder.name == "mel" else {"dtype": "int16"}
    return {s["key"]: s for s in open_dataset(folder, **options)}


def assert_mel_close(got: torch.Tensor, want: torch.Tensor, log: str) -> None:
    """The stated parity, in natural-log units (``log="db"``: 10 log10 scaled back): within
    1e-3 in every band within 65 dB of its frame's loudest band, and 0.05 everywhere.
    float32 FFTs round differently, which shows only in bands far below the frame's peak."""
    scale = 1.0 if log == "natural" else 10 / np.log(10)
    got, want = got.cpu().numpy() / scale, want.numpy() / scale
    diff = np.abs(got - want)
    loud = want >= want.max(axis=-2, keepdims=True) - 65 * np.log(10) / 10
    assert diff[loud].max() <= 1e-3 and diff.max() <= 0.05, (diff[loud].max(), diff.max())


def _epoch(loader) -> list[dict]:
    """One epoch's batches, their tensors on the CPU."""
    return [{k: getattr(v, "cpu", lambda v=v: v)() for k, v in b.items()} for b in loader]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CORE_FORMATS)
def test_unshuffled_batches_equal_batch_loaders(sharded, name, device):
    """Unshuffled, the pipeline yields batch_loader's batches: same keys in the same
    order, same fields, equal tensors (float32 and int16 audio alike)."""
    folder = sharded / name
    for dtype in ("float32", "int16"):
        options = {} if name == "mel" else {"dtype": dtype}
        ours = list(batch_loader(open_dataset(folder, **options), batch_size=4))
        loader = dali.dali_loader(folder, 4, device=device, dtype=dtype)
        theirs = _epoch(loader)
        assert len(theirs) == len(ours) == len(loader) == 4
        for mine, want in zip(theirs, ours, strict=True):
            assert set(mine) == set(want)
            for field, value in want.items():
                if isinstance(value, torch.Tensor):
                    assert value.dtype == mine[field].dtype, field
                    assert torch.equal(value, mine[field]), field
                else:
                    assert mine[field] == value, field


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("name", CORE_FORMATS)
def test_shuffled_epochs_hold_every_item_once_with_our_samples(sharded, name, batch_size, device):
    folder = sharded / name
    ours = _ours(folder)
    options = {"shuffle": True, "seed": 7, "device": device}
    loader = dali.dali_loader(folder, batch_size, dtype="int16", **options)
    orders = []
    for _ in range(3):
        batches = _epoch(loader)
        assert len(batches) == len(loader) == -(-len(ours) // batch_size)
        assert [len(b["key"]) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
        keys = [k for b in batches for k in b["key"]]
        assert sorted(keys) == sorted(ours)  # each item exactly once
        orders.append(keys)
        for batch in batches:
            for row, key in enumerate(batch["key"]):
                want = ours[key]
                assert batch["lengths"][row] == want["length"]
                if name == "mel":
                    frames = want["mel"].shape[-1]
                    assert torch.equal(batch["mel"][row, :, :frames], want["mel"])
                else:
                    assert torch.equal(batch["audio"][row], want["audio"])
            if "audio" in batch:
                mask = padding_mask(batch["lengths"].tolist(), batch["audio"].shape[-1])
                assert torch.equal(batch["attention_mask"], mask)
    assert orders[0] != sorted(orders[0]) and orders[0] != orders[1] != orders[2]
    again = dali.dali_loader(folder, batch_size, shuffle=True, seed=7, device=device)
    assert [k for b in again for k in b["key"]] == orders[0]  # the seed makes the order
    other = dali.dali_loader(folder, batch_size, shuffle=True, seed=8, device=device)
    assert [k for b in other for k in b["key"]] != orders[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CORE_FORMATS)
@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_together_read_every_item_once(sharded, name, world_size, device):
    """14 items: 7 + 7 over 2 ranks, 4 + 5 + 5 over 3 (no repeats: counts differ by one)."""
    folder = sharded / name
    keys = sorted(_ours(folder))
    for shuffle in (False, True):
        loaders = [
            dali.dali_loader(folder, 4, shuffle=shuffle, seed=3, rank=r, world_size=world_size)
            for r in range(world_size)
        ]
        for _ in range(2):
            per_rank = [[k for b in loader for k in b["key"]] for loader in loaders]
            spans = [dali.rank_span(len(keys), r, world_size) for r in range(world_size)]
            assert [len(p) for p in per_rank] == [stop - first for first, stop in spans]
            assert [len(loader) for loader in loaders] == [-(-len(p) // 4) for p in per_rank]
            assert sorted(k for p in per_rank for k in p) == keys


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["segments", "webdataset", "hdf5", "memmap"])
def test_mel_in_the_pipeline_matches_logmel(sharded, name, device):
    """Log-mel computed by DALI is LogMel(format.json's settings) of the same audio, to
    the tolerance of :func:`assert_mel_close`, with LogMel's frame count."""
    folder = sharded / name
    module = LogMel(**MEL)
    batches = list(dali.dali_loader(folder, 5, mel=True, device=device))
    assert sum(len(b["key"]) for b in batches) == 14
    for batch in batches:
        want = module(batch["audio"].cpu())
        assert batch["mel"].shape == want.shape == (len(batch["key"]), 80, 201)
        assert batch["mel_lengths"].tolist() == [201] * len(batch["key"])
        assert_mel_close(batch["mel"], want, "natural")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("log", ["natural", "db"])
def test_mel_settings_come_from_format_json(sharded, tmp_path, log, device):
    """Other settings (dB, 40 bands, 256-point FFT, a 7 kHz top) follow format.json."""
    folder = tmp_path / "memmap"
    shutil.copytree(sharded / "memmap", folder)
    config = {**MEL, "n_fft": 256, "hop_length": 128, "n_mels": 40, "f_max": 7000.0, "log": log}
    fmt = json.loads((folder / "format.json").read_text())
    (folder / "format.json").write_text(json.dumps({**fmt, "mel": config}))
    for batch in dali.dali_loader(folder, 6, mel=True, device=device):
        want = LogMel(**config)(batch["audio"].cpu())
        assert batch["mel"].shape == want.shape == (len(batch["key"]), 40, 32000 // 128 + 1)
        assert_mel_close(batch["mel"], want, log)


def test_stored_uint8_and_float16_mel_read_back_as_our_reader_does(converted_set, tmp_path):
    from prep.shard import ShardOptions, shard

    for mel_dtype in ("uint8", "float16"):
        out = tmp_path / mel_dtype
        options = ShardOptions(formats=("mel",), segment=32000, mel=MEL, mel_dtype=mel_dtype)
        assert shard(converted_set / "conv", out, options).failed == 0
        ours = _ours(out / "mel")
        for batch in dali.dali_loader(out / "mel", 4, shuffle=True):
            for row, key in enumerate(batch["key"]):
                assert torch.equal(batch["mel"][row], ours[key]["mel"])


def test_webdataset_without_indexes_warns_and_still_reads_every_item(sharded, tmp_path):
    folder = tmp_path / "webdataset"
    shutil.copytree(sharded / "webdataset", folder, ignore=shutil.ignore_patterns("*.idx"))
    with pytest.warns(UserWarning, match=r"shard-000000\.idx: missing .*wds2idx"):
        loader = dali.dali_loader(folder, 4, shuffle=True)
    assert Counter(k for b in loader for k in b["key"]) == Counter(list(_ours(folder)))


def test_a_wav_that_breaks_the_folders_promise_is_named(sharded, tmp_path):
    folder = tmp_path / "segments"
    shutil.copytree(sharded / "segments", folder)
    entry = json.loads((folder / "manifest.jsonl").read_text().splitlines()[5])
    path = folder / entry["audio_filepath"]
    sf.write(path, np.zeros((32000, 2), dtype=np.int16), 16000, subtype="PCM_16")
    with pytest.raises(FormatError, match=rf"{entry['key']}\.wav: 16000 Hz, 2 channel"):
        list(dali.dali_loader(folder, 4))


def test_bad_options_are_refused_before_any_work(sharded):
    with pytest.raises(ValueError, match="device must be one of cpu, gpu"):
        dali.dali_loader(sharded / "memmap", 4, device="tpu")
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        dali.dali_loader(sharded / "memmap", 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size must be 1 or more"):
        dali.dali_loader(sharded / "memmap", 0)


def test_import_loaders_does_not_load_dali():
    loaded = modules_loaded_by("import loaders; loaders.open_dataset", ("nvidia",))
    assert loaded == []
    assert "loaders.dali" in modules_loaded_by("from loaders import dali_loader", ("loaders",))
