"""WebDataset shards: every item once per epoch for any shard, worker and rank count.

13 items (prime: they divide among no rank or worker count) in 1, 2, 3 or 5 real tar
shards written by ``prep shard``, read through DataLoader workers and ``batch_loader``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from torch.utils.data import DataLoader, IterableDataset

from loaders import WebDatasetShards, batch_loader
from prep.shard import ShardOptions, shard

ITEMS = 13
SHARD_SIZE = {1: 13, 2: 7, 3: 5, 5: 3}  # shard count -> --shard-size giving it


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """shard count -> a webdataset folder of the same 13 items."""
    root = tmp_path_factory.mktemp("wds")
    rng = np.random.default_rng(0)
    (root / "src").mkdir()
    for i in range(ITEMS):
        samples = rng.integers(-9000, 9000, 800 + 40 * i).astype(np.int16)
        sf.write(root / "src" / f"u{i:02d}.wav", samples, 16000)
    folders = {}
    for count, size in SHARD_SIZE.items():
        options = ShardOptions(formats=("webdataset",), shard_size=size, jobs=1)
        assert shard(root / "src", root / f"s{count}", options).failed == 0
        folders[count] = root / f"s{count}" / "webdataset"
        assert len(list(folders[count].glob("*.tar"))) == count
    return folders


def _datasets(folder, ranks: int, **kwargs) -> list[WebDatasetShards]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets = [
            WebDatasetShards(folder, rank=r, world_size=ranks, **kwargs) for r in range(ranks)
        ]
    repeats = math.ceil(ITEMS / ranks) * ranks - ITEMS
    said = [str(w.message) for w in caught]
    if repeats:  # never silent: each rank says how many items repeat
        assert said == [f"{folder}: {ITEMS} items do not split evenly over {ranks} ranks; "
                        f"{repeats} are read twice per epoch so every rank gets "
                        f"{math.ceil(ITEMS / ranks)}"] * ranks  # fmt: skip
    else:
        assert said == []
    return datasets


def _check_epoch(per_rank: list[list[str]], ranks: int) -> None:
    """Each rank gets as many; all items are seen; repeats only as the rank count forces."""
    assert len({len(keys) for keys in per_rank}) == 1
    seen = Counter(k for keys in per_rank for k in keys)
    assert len(seen) == ITEMS
    assert seen.total() == math.ceil(ITEMS / ranks) * ranks
    for keys in per_rank:
        assert len(set(keys)) == len(keys)  # never twice within a rank


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("count", sorted(SHARD_SIZE))
def test_every_item_once_through_dataloader_workers(shards, count, workers, ranks, shuffle):
    datasets = _datasets(shards[count], ranks, shuffle=shuffle, seed=7, buffer_size=4)
    epochs = []
    for epoch in range(2 if shuffle else 1):
        per_rank = []
        for dataset in datasets:
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=None, num_workers=workers)
            keys = [s["key"] for s in loader]
            assert len(keys) == len(dataset) == sum(dataset.items_per_worker(max(workers, 1)))
            per_rank.append(keys)
        _check_epoch(per_rank, ranks)
        epochs.append(per_rank)
    if shuffle:
        assert epochs[0] != epochs[1]  # a new order each epoch, still every item once


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(
    ("count", "workers", "ranks"), [(1, 2, 1), (2, 3, 2), (3, 2, 3), (5, 3, 1)]
)
def test_every_item_once_through_batch_loader(shards, count, workers, ranks, shared):
    per_rank = []
    for dataset in _datasets(shards[count], ranks, dtype="int16"):
        loader = batch_loader(
            dataset, 2, shuffle=True, seed=3, shared_slots=shared, num_workers=workers
        )
        batches = list(loader)
        if shared:  # exact: it counts the batches each worker makes
            assert len(batches) == len(loader)
        per_rank.append([k for b in batches for k in b["key"]])
    _check_epoch(per_rank, ranks)
    assert per_rank[0] != sorted(per_rank[0])


def test_batch_loader_shuffle_shuffles_webdataset_with_its_seed(shards):
    dataset = WebDatasetShards(shards[2])
    assert not dataset.shuffle

    def keys(seed):
        return [k for b in batch_loader(dataset, 4, shuffle=True, seed=seed) for k in b["key"]]

    plain = [k for b in batch_loader(dataset, 4) for k in b["key"]]
    assert sorted(keys(1)) == sorted(plain) and keys(1) != plain
    assert keys(1) == keys(1) and keys(1) != keys(2)
    assert not dataset.shuffle  # the caller's dataset is left as it was


def test_batch_loader_refuses_to_shuffle_an_iterable_that_cannot(shards):
    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(ValueError, match="Stream cannot be shuffled by the loader"):
        batch_loader(Stream(), 2, shuffle=True)


def test_a_run_is_read_only_as_far_as_it_goes(shards):
    """With more workers than shards, workers split a shard's items, not repeat them."""
    dataset = WebDatasetShards(shards[1])
    runs = [dataset.worker_runs(w, 3) for w in range(3)]
    assert runs == [[(0, 0, 5)], [(0, 5, 9)], [(0, 9, 13)]]
