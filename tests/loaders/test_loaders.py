"""Loaders: every dataset against what prep wrote, with 0 and 2 DataLoader workers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO, make_file
from torch.utils.data import DataLoader

from loaders import (
    Augment,
    ConvertedDataset,
    DurationBucketSampler,
    HDF5Dataset,
    LogMel,
    MelDataset,
    MemmapDataset,
    NoiseBank,
    OnTheFlyDataset,
    SegmentsDataset,
    ThreadedLoader,
    WebDatasetShards,
    batch_loader,
    open_dataset,
    pad_collate,
    to_device,
)
from loaders.sampler import padding_waste
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.shard import ShardOptions, shard

MEL = {
    "sample_rate": 16000,
    "n_fft": 400,
    "hop_length": 160,
    "n_mels": 40,
    "f_min": 0.0,
    "f_max": 8000.0,
    "log": "natural",
}
SEGMENT = 16000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Original audio, its prep convert output, and prep shard output in every format."""
    root = tmp_path_factory.mktemp("loaders")
    src = root / "src"
    for i, seconds in enumerate([0.6, 1.7, 2.4, 3.1, 4.0, 1.2, 2.9, 0.9]):
        make_file(src / f"s{i % 3}" / f"u{i}.{('mp3', 'flac', 'ogg')[i % 3]}", seconds=seconds)
        if i % 2 == 0:
            (src / f"s{i % 3}" / f"u{i}.txt").write_text(f"utterance {i}")
    convert(src, root / "conv", ConvertOptions(jobs=1))
    formats = ("segments", "mel", "webdataset", "hdf5", "memmap")
    summary = shard(
        root / "conv",
        root / "sh",
        ShardOptions(formats=formats, segment=SEGMENT, mel=MEL, shard_size=2, jobs=1),
    )
    assert summary.failed == 0
    return {"src": src, "conv": root / "conv", "sh": root / "sh", "items": summary.items}


def _written(data) -> dict[str, np.ndarray]:
    """key -> the int16 row prep wrote (from the memmap, whose rows every format shares)."""
    array = np.load(data["sh"] / "memmap" / "audio.npy")
    return {
        e["key"]: array[e["row"]] for e in read_manifest(data["sh"] / "memmap" / "manifest.jsonl")
    }


MAP_STYLE = {
    "segments": lambda d, **kw: SegmentsDataset(d["sh"] / "segments", **kw),
    "memmap": lambda d, **kw: MemmapDataset(d["sh"] / "memmap", **kw),
    "hdf5": lambda d, **kw: HDF5Dataset(d["sh"] / "hdf5", **kw),
}


def _epoch_keys(dataset, workers: int, seed: int, batch_size: int = 3) -> list[str]:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=pad_collate,
        generator=torch.Generator().manual_seed(seed),
    )
    return [k for batch in loader for k in batch["key"]]


@pytest.mark.parametrize("name", sorted(MAP_STYLE))
@pytest.mark.parametrize("workers", [0, 2])
def test_map_style_datasets_yield_every_item_once_with_prep_values(data, name, workers):
    dataset = MAP_STYLE[name](data)
    written = _written(data)
    keys = _epoch_keys(dataset, workers, seed=1)
    assert sorted(keys) == sorted(written) and len(keys) == data["items"]
    assert keys == _epoch_keys(dataset, workers, seed=1)  # the same order for the same seed
    assert keys != _epoch_keys(dataset, workers, seed=2)
    loader = DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=pad_collate)
    for batch in loader:
        assert batch["audio"].dtype == torch.float32 and batch["audio"].shape[1] == SEGMENT
        for key, row, length in zip(batch["key"], batch["audio"], batch["lengths"], strict=True):
            expected = torch.from_numpy(written[key].astype(np.float32) / 32768)
            assert torch.equal(row, expected)
            assert int(length) <= SEGMENT and batch["sample_rate"] == 16000


def test_sample_contract(data):
    sample = MemmapDataset(data["sh"] / "memmap")[0]
    assert set(sample) >= {"key", "audio", "length", "sample_rate"}
    assert sample["audio"].shape == (SEGMENT,) and sample["audio"].dtype == torch.float32
    assert float(sample["audio"].abs().max()) <= 1.0
    texts = [s.get("text") for s in SegmentsDataset(data["sh"] / "segments")]
    assert "utterance 0" in texts


@pytest.mark.parametrize("name", sorted(MAP_STYLE))
def test_int16_transport_gives_exactly_the_float32_batch(data, name):
    fast = DataLoader(MAP_STYLE[name](data, dtype="int16"), batch_size=5, collate_fn=pad_collate)
    slow = DataLoader(MAP_STYLE[name](data), batch_size=5, collate_fn=pad_collate)
    for a, b in zip(fast, slow, strict=True):
        assert a["audio"].dtype == torch.int16
        assert torch.equal(to_device(a, "cpu")["audio"], b["audio"])


def test_read_batch_leaves_the_mask_to_the_loader_when_asked(data):
    for dataset in (MemmapDataset(data["sh"] / "memmap"), HDF5Dataset(data["sh"] / "hdf5")):
        assert "attention_mask" in dataset.read_batch([0, 1])
        assert "attention_mask" not in dataset.read_batch([0, 1], mask=False)


def test_batch_reads_equal_item_reads(data):
    for dataset in (MemmapDataset(data["sh"] / "memmap"), HDF5Dataset(data["sh"] / "hdf5")):
        indices = [5, 0, 3, 3, 1]
        batch = dataset.__getitems__(indices)
        for i, sample in zip(indices, batch, strict=True):
            single = dataset[i]
            assert sample["key"] == single["key"] and torch.equal(sample["audio"], single["audio"])


def test_hdf5_is_opened_in_each_worker_never_in_the_parent(data):
    dataset = HDF5Dataset(data["sh"] / "hdf5")
    for _ in range(2):
        keys = _epoch_keys(dataset, workers=2, seed=0)
        assert len(keys) == data["items"]
    assert not dataset._file.opened  # the parent never opened it, so nothing crosses a fork
    h5 = str((data["sh"] / "hdf5" / "data.h5").resolve())

    def open_handles() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                count += os.readlink(f"/proc/self/fd/{fd}") == h5
        return count

    assert open_handles() == 0
    for _ in range(3):
        _epoch_keys(dataset, workers=0, seed=0)
    assert open_handles() == 1  # one handle, reused across epochs: none leaked
    dataset.close()
    assert open_handles() == 0


def test_mel_dataset_and_hdf5_mel_match_on_the_fly_logmel(data):
    fmt = json.loads((data["sh"] / "mel" / "format.json").read_text())
    module = LogMel(**fmt["mel"])
    written = _written(data)
    for sample in MelDataset(data["sh"] / "mel"):
        expected = module(torch.from_numpy(written[sample["key"]]))
        assert sample["mel"].shape == (40, SEGMENT // 160 + 1)
        torch.testing.assert_close(sample["mel"], expected, atol=1e-4, rtol=1e-4)
    hdf5 = HDF5Dataset(data["sh"] / "hdf5", with_mel=True)
    assert hdf5[0]["mel"].shape == (40, SEGMENT // 160 + 1)


@pytest.mark.parametrize("name", ["hdf5", "webdataset"])
def test_a_set_with_mel_gives_audio_only_unless_mel_is_asked_for(data, name):
    """Precomputed mel costs a third of the audio-only speed: it is read only on request."""
    stored = {s["key"]: s["mel"] for s in MelDataset(data["sh"] / "mel")}
    plain = list(open_dataset(data["sh"] / name))
    assert len(plain) == len(stored) and all("mel" not in s and "audio" in s for s in plain)
    asked = {s["key"]: s for s in open_dataset(data["sh"] / name, with_mel=True)}
    assert asked.keys() == stored.keys()
    for key, sample in asked.items():
        assert torch.equal(sample["mel"], stored[key]) and "audio" in sample
    batch = next(iter(batch_loader(open_dataset(data["sh"] / name), 3)))
    assert "mel" not in batch and "mel_lengths" not in batch
    batch = next(iter(batch_loader(open_dataset(data["sh"] / name, with_mel=True), 3)))
    assert torch.equal(batch["mel"], torch.stack([stored[k] for k in batch["key"]]))
    assert batch["mel_lengths"].tolist() == [SEGMENT // 160 + 1] * 3


def test_asking_for_mel_from_a_set_without_it_is_refused_at_open(data, tmp_path):
    out = _webdataset_shards(data, tmp_path / "nomel", shard_size=4)
    shard(data["conv"], out, ShardOptions(formats=("hdf5",), segment=SEGMENT, jobs=1))
    for name in ("webdataset", "hdf5"):
        assert "mel" not in next(iter(open_dataset(out / name)))
        with pytest.raises(ValueError, match=f"{out / name}: with_mel=True, but .* no mel"):
            open_dataset(out / name, with_mel=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_precomputed_mel_matches_gpu_mel(data):
    fmt = json.loads((data["sh"] / "mel" / "format.json").read_text())
    module = LogMel(**fmt["mel"]).cuda()
    written = _written(data)
    for sample in MelDataset(data["sh"] / "mel"):
        gpu = module(torch.from_numpy(written[sample["key"]]).cuda()).cpu()
        torch.testing.assert_close(sample["mel"], gpu, atol=1e-3, rtol=1e-3)


def _webdataset_shards(data, out: Path, shard_size: int) -> Path:
    """The fixture's converted set as WebDataset shards of ``shard_size`` items, in ``out``."""
    shard(
        data["conv"],
        out,
        ShardOptions(formats=("webdataset",), segment=SEGMENT, shard_size=shard_size, jobs=1),
    )
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_webdataset_every_item_once_across_ranks_and_workers(data, tmp_path, workers):
    """With one item per shard and an even item count, 2 ranks x any workers split exactly."""
    assert data["items"] % 2 == 0
    out = _webdataset_shards(data, tmp_path / "ones", shard_size=1)
    everything = []
    for rank in range(2):
        dataset = WebDatasetShards(
            out / "webdataset", shuffle=True, seed=3, rank=rank, world_size=2
        )
        keys = [s["key"] for s in DataLoader(dataset, batch_size=None, num_workers=workers)]
        assert len(keys) == len(dataset) == data["items"] // 2  # equal work per rank
        everything += keys
    assert Counter(everything) == Counter(_written(data).keys())


def test_webdataset_sample_contract(data):
    sample = next(iter(WebDatasetShards(data["sh"] / "webdataset", with_mel=True)))
    assert sample["audio"].dtype == torch.float32 and sample["audio"].shape == (SEGMENT,)
    assert sample["mel"].shape == (40, SEGMENT // 160 + 1) and sample["sample_rate"] == 16000


def test_webdataset_ranks_get_equal_counts_even_with_uneven_shards(data, tmp_path):
    out = _webdataset_shards(data, tmp_path / "uneven", shard_size=5)
    counts, keys = [], Counter()
    for rank in range(3):
        with pytest.warns(UserWarning, match=f"{-data['items'] % 3} are read twice"):
            dataset = WebDatasetShards(out / "webdataset", rank=rank, world_size=3)
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        counts.append(sum(1 for s in loader if not keys.update([s["key"]])))
    assert counts[0] == counts[1] == counts[2] == -(-data["items"] // 3)
    assert set(keys) == set(_written(data)) and keys.total() == 3 * counts[0]


def test_webdataset_same_seed_same_order(data):
    def order(seed):
        ds = WebDatasetShards(data["sh"] / "webdataset", shuffle=True, seed=seed)
        return [s["key"] for s in ds]

    assert order(5) == order(5) and order(5) != order(6)


def test_open_dataset_picks_the_reader(data):
    assert isinstance(open_dataset(data["sh"] / "memmap"), MemmapDataset)
    assert isinstance(open_dataset(data["sh"] / "hdf5"), HDF5Dataset)
    assert isinstance(open_dataset(data["sh"] / "segments"), SegmentsDataset)
    assert isinstance(open_dataset(data["sh"] / "mel"), MelDataset)
    assert isinstance(open_dataset(data["sh"] / "webdataset"), WebDatasetShards)
    assert isinstance(open_dataset(data["conv"]), ConvertedDataset)
    assert isinstance(open_dataset(data["src"]), OnTheFlyDataset)
    assert open_dataset(data["sh"] / "memmap", dtype="int16")[0]["audio"].dtype == torch.int16


def test_converted_whole_files_and_crops_that_read_only_their_frames(data, tmp_path):
    dataset = ConvertedDataset(data["conv"])
    entries = read_manifest(data["conv"] / "manifest.jsonl")
    for entry, sample in zip(entries, dataset, strict=True):
        samples, _ = sf.read(data["conv"] / entry["audio_filepath"], dtype="int16")
        assert torch.equal(sample["audio"], torch.from_numpy(samples.astype(np.float32) / 32768))
    cropped = ConvertedDataset(data["conv"], crop_seconds=0.5, seed=1)
    first = [s["key"] for s in cropped]
    assert first == [s["key"] for s in cropped]
    cropped.set_epoch(1)
    assert first != [s["key"] for s in cropped]
    for i, sample in enumerate(cropped):
        entry = entries[i]
        whole, _ = sf.read(data["conv"] / entry["audio_filepath"], dtype="int16")
        start = cropped.crop_start(i)
        expected = whole[start : start + 8000].astype(np.float32) / 32768
        assert torch.equal(sample["audio"], torch.from_numpy(expected))
    # a crop of a long file reads a small part of it (bytes counted by the kernel)
    long_dir = tmp_path / "long"
    convert(
        make_file(tmp_path / "in" / "long.flac", seconds=60.0).parent,
        long_dir,
        ConvertOptions(jobs=1),
    )
    long_set = ConvertedDataset(long_dir, crop_seconds=1.0, seed=0)

    def bytes_read() -> int:
        with open("/proc/self/io") as fh:
            return int(next(line for line in fh if line.startswith("rchar")).split()[1])

    before = bytes_read()
    long_set[0]
    assert bytes_read() - before < 200_000  # the file is 1.9 MB; one second is 32 kB


def test_set_epoch_reaches_persistent_workers(data):
    """Each epoch's shuffle (WebDataset) and crops (converted files) as in a fresh loader,
    though the workers were started in epoch 0 with copies of the dataset."""

    for dataset in (
        WebDatasetShards(data["sh"] / "webdataset", shuffle=True, seed=4, buffer_size=8),
        ConvertedDataset(data["conv"], crop_seconds=0.5, seed=1),
    ):
        persistent = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
        seen = []
        for epoch in range(3):
            dataset.set_epoch(epoch)
            fresh = [s["key"] for s in DataLoader(dataset, batch_size=None, num_workers=2)]
            ours = [s["key"] for s in persistent]
            assert ours == fresh, (type(dataset).__name__, epoch)
            seen.append(ours)
        assert seen[0] != seen[1] != seen[2]


def test_on_the_fly_decoding_matches_prep_convert(data):
    dataset = OnTheFlyDataset(data["src"])
    converted = {e["source"]: e for e in read_manifest(data["conv"] / "manifest.jsonl")}
    for sample in dataset:
        entry = converted[sample["key"]]
        samples, _ = sf.read(data["conv"] / entry["audio_filepath"], dtype="int16")
        assert torch.equal(sample["audio"], torch.from_numpy(samples.astype(np.float32) / 32768))
    crops = OnTheFlyDataset(data["src"], crop_seconds=1.0, seed=4)
    assert all(len(s["audio"]) <= 16000 for s in crops)


def test_process_cache_second_epoch_decodes_nothing(data):
    dataset = OnTheFlyDataset(data["src"], cache="process")
    list(dataset)
    assert dataset.decodes == len(dataset)
    list(dataset)
    assert dataset.decodes == len(dataset)
    small = OnTheFlyDataset(data["src"], cache="process", cache_bytes=60_000)
    list(small)
    list(small)
    assert small.decodes > len(small)  # a budget smaller than the set: some decoded again
    assert small._memory_bytes <= 60_000


def test_shared_cache_serves_every_worker_in_later_epochs(data, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(data["src"], src)
    dataset = OnTheFlyDataset(src, cache="shared")
    try:
        first = [
            k
            for b in DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=pad_collate)
            for k in b["key"]
        ]
        shutil.rmtree(src)  # nothing can be decoded any more: epoch 2 must come from the cache
        again = [
            k
            for b in DataLoader(
                dataset, batch_size=2, num_workers=2, collate_fn=pad_collate, shuffle=True
            )
            for k in b["key"]
        ]
        assert sorted(first) == sorted(again)
    finally:
        dataset.close()
    assert not dataset.cache_dir.exists()


def test_pad_collate_pads_masks_and_keeps_lists():
    samples = [
        {"key": "a", "audio": torch.ones(3), "length": 3, "sample_rate": 16000, "text": "x"},
        {"key": "b", "audio": torch.ones(5), "length": 5, "sample_rate": 16000, "text": "y"},
    ]
    batch = pad_collate(samples)
    assert batch["audio"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["attention_mask"].long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["lengths"].tolist() == [3, 5] and batch["text"] == ["x", "y"]
    fixed = pad_collate([{**s, "audio": torch.ones(4), "mel": torch.zeros(2, 3)} for s in samples])
    assert fixed["audio"].shape == (2, 4) and fixed["mel"].shape == (2, 2, 3)
    assert fixed["attention_mask"].tolist() == [[True] * 3 + [False], [True] * 4]


def test_pad_collate_into_given_tensors_equals_pad_collate():
    rng = np.random.default_rng(3)
    samples = [
        {
            "key": str(i),
            "audio": torch.from_numpy(rng.integers(-9, 9, n).astype(np.int16)),
            "mel": torch.from_numpy(rng.standard_normal((4, n // 2)).astype(np.float32)),
            "length": n,
            "sample_rate": 16000,
        }
        for i, n in enumerate([6, 10, 8])
    ]
    given = {}

    def allocate(name, shape, dtype):  # dirty memory, as a reused slot is
        given[name] = torch.full(shape, 7).to(dtype)
        return given[name]

    into = pad_collate(samples, allocate=allocate)
    expected = pad_collate(samples)
    assert set(into) == set(expected) and set(given) == {"audio", "mel", "attention_mask"}
    for name in ("audio", "mel", "attention_mask"):
        assert into[name] is given[name] and torch.equal(into[name], expected[name]), name
    assert "attention_mask" not in pad_collate(samples, mask=False)


def test_duration_buckets_respect_the_budget_and_waste_little():
    rng = np.random.default_rng(0)
    durations = list(rng.lognormal(1.5, 0.7, 2000).clip(0.5, 30.0))
    sampler = DurationBucketSampler(durations, max_batch_seconds=120.0, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    assert all(len(b) * max(durations[i] for i in b) <= 120.0 for b in batches)
    assert batches == list(DurationBucketSampler(durations, 120.0, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sizes = [len(b) for b in batches]
    order = rng.permutation(2000)
    random_batches, start = [], 0
    for size in sizes:  # random batching with the same batch sizes
        random_batches.append(list(order[start : start + size]))
        start += size
    bucketed, random_waste = (
        padding_waste(batches, durations),
        padding_waste(random_batches, durations),
    )
    assert bucketed < 0.1 and bucketed < random_waste / 4, (bucketed, random_waste)


def test_duration_buckets_give_every_rank_as_many_batches():
    durations = [1.0 + (i % 7) for i in range(101)]
    counts = [len(DurationBucketSampler(durations, 20.0, num_replicas=4, rank=r)) for r in range(4)]
    assert len(set(counts)) == 1
    seen = set()
    for r in range(4):
        seen |= {
            i for b in DurationBucketSampler(durations, 20.0, num_replicas=4, rank=r) for i in b
        }
    assert seen == set(range(101))


class _Counting(torch.utils.data.Dataset):
    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay, self.loaded = n, delay, 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        time.sleep(self.delay)
        with self.lock:
            self.loaded += 1
        return {"key": str(i), "audio": torch.full((4,), float(i)), "length": 4, "sample_rate": 1}


def test_threaded_loader_keeps_order_and_bounds_its_queue():
    dataset = _Counting(60)
    loader = ThreadedLoader(dataset, batch_size=3, num_threads=4, prefetch=2)
    keys = []
    for batch in loader:
        time.sleep(0.01)  # a slow consumer
        keys += batch["key"]
        assert dataset.loaded - len(keys) <= 3 * 3  # prefetched, plus the batch being replaced
    assert keys == [str(i) for i in range(60)]
    assert len(loader) == 20


def test_threaded_loader_shuts_down_cleanly_when_stopped_early():
    dataset = _Counting(200, delay=0.002)
    for batch in ThreadedLoader(dataset, batch_size=2, num_threads=3, prefetch=4):
        if batch["key"][0] == "10":
            break
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("audioprep-loader")]
    assert dataset.loaded < 60  # the rest was never loaded


def test_augment_is_seeded_and_keeps_snr_in_range(data):
    bank = NoiseBank(data["src"] / "s1")
    sample = MemmapDataset(data["sh"] / "memmap")[3]
    clean = Augment(bank, snr_db=(8.0, 12.0), gain_db=None, seed=0)
    a, b = clean(sample)["audio"], clean(sample)["audio"]
    assert torch.equal(a, b) and not torch.equal(
        a, Augment(bank, gain_db=None, seed=1)(sample)["audio"]
    )
    n = sample["length"]
    noise = (a - sample["audio"])[:n]
    snr = 10 * torch.log10(sample["audio"][:n].pow(2).mean() / noise.pow(2).mean())
    assert 8.0 - 1e-3 <= float(snr) <= 12.0 + 1e-3
    batch = torch.stack([MemmapDataset(data["sh"] / "memmap")[i]["audio"] for i in range(4)])
    out1 = clean.batch(batch, torch.Generator().manual_seed(7))
    out2 = clean.batch(batch, torch.Generator().manual_seed(7))
    assert torch.equal(out1, out2)
    snrs = 10 * torch.log10(batch.pow(2).mean(1) / (out1 - batch).pow(2).mean(1))
    assert bool(((snrs > 8.0 - 1e-3) & (snrs < 12.0 + 1e-3)).all())
    shifted = Augment(None, gain_db=None, max_shift_seconds=0.1, seed=0)(sample)["audio"]
    assert torch.equal(torch.sort(shifted[:n]).values, torch.sort(sample["audio"][:n]).values)


def test_loaders_import_neither_prep_click_nor_joblib_and_print_nothing(data):
    code = (
        "import sys, loaders; from loaders import *; "
        "import loaders.open, loaders.segments, loaders.memmap, loaders.hdf5, loaders.mel, "
        "loaders.webdataset, loaders.onthefly, loaders.threaded, loaders.augment, loaders.sampler; "
        f"ds = loaders.open_dataset({str(data['sh'] / 'hdf5')!r}); [s for s in ds]; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('prep', 'click', 'joblib')]; "
        "sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("name", ["memmap", "hdf5", "segments"])
@pytest.mark.parametrize("workers", [0, 2])
def test_batch_loader_gives_the_batches_pad_collate_gives(data, name, workers):
    dataset = MAP_STYLE[name](data)
    loader = batch_loader(dataset, batch_size=3, shuffle=True, seed=4, num_workers=workers)
    batches = list(loader)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(_written(data)) and len(loader) == len(batches)
    assert keys == [k for b in batch_loader(dataset, 3, shuffle=True, seed=4) for k in b["key"]]
    index = {e["key"]: i for i, e in enumerate(dataset.entries)}
    for batch in batches:
        expected = pad_collate([dataset[index[k]] for k in batch["key"]])
        assert set(batch) == set(expected)
        for field in ("audio", "lengths", "attention_mask"):
            assert torch.equal(batch[field], expected[field]), field
    fast = batch_loader(MAP_STYLE[name](data, dtype="int16"), 3, shuffle=True, seed=4)
    for int16_batch, float_batch in zip(fast, batches, strict=True):
        assert int16_batch["audio"].dtype == torch.int16
        assert torch.equal(to_device(int16_batch, "cpu")["audio"], float_batch["audio"])


SHARED = {
    **MAP_STYLE,
    "mel": lambda d, dtype="float32": MelDataset(d["sh"] / "mel"),
    "hdf5 with mel": lambda d, **kw: HDF5Dataset(d["sh"] / "hdf5", with_mel=True, **kw),
}


def _in_ring(tensor: torch.Tensor, loader) -> bool:
    buffers = loader.ring.buffers
    start = buffers.data_ptr()
    return start <= tensor.data_ptr() < start + buffers.numel()


def _assert_same_batch(ours: dict, expected: dict, shared) -> None:
    """Same keys, equal tensors, and ours a view of the shared ring."""
    assert set(ours) == set(expected) and ours["key"] == expected["key"]
    for field, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(ours[field], value), field
    assert _in_ring(ours["audio" if "audio" in ours else "mel"], shared)


@pytest.mark.parametrize("name", sorted(SHARED))
@pytest.mark.parametrize(("workers", "dtype"), [(1, "int16"), (2, "float32")])
def test_shared_slots_give_the_batches_the_plain_loader_gives(data, name, workers, dtype):
    dataset = SHARED[name](data, dtype=dtype)
    shared = batch_loader(
        dataset, 3, shuffle=True, seed=5, shared_slots=True, num_workers=workers,
        persistent_workers=True,
    )  # fmt: skip
    plain = batch_loader(dataset, 3, shuffle=True, seed=5)
    assert len(shared) == len(plain)
    padded = 0
    for _epoch in range(2):  # slot numbers run on across epochs
        count = 0
        for ours, expected in zip(shared, plain, strict=True):
            _assert_same_batch(ours, expected, shared)
            if "audio" in ours:
                padded += bool((ours["lengths"] < ours["audio"].shape[-1]).any())
            count += 1
        assert count == len(plain)
    assert padded or "audio" not in expected  # the mask built in the slot was compared too


@pytest.mark.parametrize(
    ("workers", "persistent", "with_mel"), [(1, True, False), (2, True, True), (2, False, False)]
)
def test_shared_slots_for_webdataset_give_the_plain_loaders_batches(
    data, workers, persistent, with_mel
):
    dataset = WebDatasetShards(
        data["sh"] / "webdataset", shuffle=True, seed=2, dtype="int16", with_mel=with_mel
    )
    shared = batch_loader(
        dataset, 3, shared_slots=True, num_workers=workers, persistent_workers=persistent
    )
    plain = batch_loader(dataset, 3, num_workers=workers)
    for epoch in range(2):  # each worker's slot numbers run on across epochs
        dataset.set_epoch(epoch)
        count = 0
        for ours, expected in zip(shared, plain, strict=True):
            _assert_same_batch(ours, expected, shared)
            count += 1
        assert count == len(shared)  # exact, however unevenly the workers split the items
    assert sorted(shared._next_seq) == list(range(workers))


def test_memmap_refuses_a_manifest_row_outside_the_array(data):
    from loaders.shared_batches import SharedBatchRing

    dataset = MemmapDataset(data["sh"] / "memmap", dtype="int16")
    dataset.entries = [dict(e) for e in dataset.entries]
    dataset.entries[0]["row"] = len(dataset.array)  # a stale manifest
    writer = SharedBatchRing(1, 1 << 20).writer(0)
    with pytest.raises(IndexError, match="out of range"):
        dataset.read_batch([0, 1], allocate=writer.allocate)


@pytest.mark.parametrize(
    ("name", "slots"), [("memmap", 1 * 2 + 2), ("webdataset", 2 * (1 * 2 + 2))]
)
def test_a_shared_batch_stays_intact_until_two_more_are_taken(data, name, slots):
    if name == "memmap":
        dataset = MemmapDataset(data["sh"] / "memmap", dtype="int16")
    else:
        dataset = WebDatasetShards(data["sh"] / "webdataset", shuffle=True, seed=1)
    loader = batch_loader(
        dataset, 1, shuffle=True, seed=1, shared_slots=True, num_workers=2, prefetch_factor=1
    )
    held, copies = [], []
    for batch in loader:
        held.append(batch)
        copies.append({k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)})
        if len(held) == 2:  # the one before this one is still what the worker wrote
            for field, value in copies[0].items():
                assert torch.equal(held[0][field], value), field
            held.pop(0)
            copies.pop(0)
    # prefetch_factor * workers + keep; for an iterable dataset, that many per worker
    assert len(loader.ring.buffers) == slots


def test_a_batch_larger_than_its_slot_travels_the_usual_way(data):
    from loaders.shared_batches import SharedBatchLoader

    dataset = SegmentsDataset(data["sh"] / "segments")
    sampler = torch.utils.data.BatchSampler(range(len(dataset)), 4, drop_last=False)
    loader = SharedBatchLoader(dataset, sampler, num_workers=2, slot_bytes=64)
    keys = []
    for batch, expected in zip(loader, batch_loader(dataset, 4), strict=True):
        assert not _in_ring(batch["audio"], loader)
        assert torch.equal(batch["audio"], expected["audio"]) and batch["key"] == expected["key"]
        keys += batch["key"]
    assert len(keys) == len(dataset)


def test_shared_slots_refuse_what_would_reuse_a_slot_too_early(data):
    dataset = MemmapDataset(data["sh"] / "memmap")
    with pytest.raises(ValueError, match="in_order"):
        batch_loader(dataset, 2, shared_slots=True, num_workers=2, in_order=False)
    loader = batch_loader(dataset, 2, shared_slots=True, num_workers=1)
    first = iter(loader)
    next(first)
    with pytest.raises(RuntimeError, match="one loop at a time"):
        next(iter(loader))
    first.close()
    assert len(list(loader)) == len(loader)  # free again once the first loop is closed
    assert type(batch_loader(dataset, 2, shared_slots=True)).__name__ == "BatchLoader"
