"""Lightning: prep shard folders through ``AudioDataModule`` into ``Trainer.fit``, logged
to TensorBoard and read back; bench results as TensorBoard scalars."""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import REPO, modules_loaded_by
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from loaders.lightning import AudioDataModule, RankBatches, log_bench_scalars, split_items
from manifests import read_manifest
from prep.shard import ShardOptions, shard

SEGMENT = 16000


@pytest.fixture(scope="module")
def sh(converted_set, tmp_path_factory) -> Path:
    """The session's converted set as 1 s memmap rows and WebDataset shards of 4 items."""
    out = tmp_path_factory.mktemp("lightning") / "sh"
    options = ShardOptions(formats=("memmap", "webdataset"), segment=SEGMENT, shard_size=4, jobs=1)
    assert shard(converted_set / "conv", out, options).failed == 0
    return out


def _keys(folder: Path) -> list[str]:
    return [e["key"] for e in read_manifest(folder / "manifest.jsonl")]


class TinyAutoencoder(LightningModule):
    """The bench's linear autoencoder, small (loaders and tests do not import prep.bench);
    it notes the keys of every batch it trains on, per epoch."""

    def __init__(self, samples: int = SEGMENT, bottleneck: int = 8) -> None:
        super().__init__()
        self.encode = nn.Linear(samples, bottleneck)
        self.decode = nn.Linear(bottleneck, samples)
        self.seen: list[list[str]] = []
        self.rank_file: Path | None = None

    def _loss(self, batch: dict) -> torch.Tensor:
        audio = batch["audio"]
        assert audio.dtype == torch.float32  # int16 became float32 on the device
        return nn.functional.mse_loss(self.decode(torch.relu(self.encode(audio))), audio)

    def on_train_epoch_start(self) -> None:
        self.seen.append([])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, batch_size=len(batch["key"]))
        self.seen[-1] += batch["key"]
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), batch_size=len(batch["key"]))

    def on_train_end(self) -> None:
        if self.rank_file is not None:  # a DDP rank's process: tell the test what it read
            path = self.rank_file.with_name(f"rank{self.global_rank}.json")
            path.write_text(json.dumps(self.seen))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(data: AudioDataModule, logdir: Path, epochs: int = 2, **trainer_options):
    model = TinyAutoencoder()
    logger = TensorBoardLogger(logdir, name="ae")
    trainer = Trainer(
        accelerator="cpu", max_epochs=epochs, logger=logger, log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, **trainer_options,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return model, logger


def _scalars(logger: TensorBoardLogger) -> EventAccumulator:
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    return events


def test_memmap_fit_with_shared_slots_and_a_seeded_validation_share(sh, tmp_path):
    data = AudioDataModule(
        sh / "memmap", batch_size=8, num_workers=1, val_fraction=0.2, seed=3,
        dataset_options={"dtype": "int16"}, shared_slots=True, persistent_workers=True,
    )  # fmt: skip
    model, logger = _fit(data, tmp_path)
    keys = _keys(sh / "memmap")
    train, val = split_items(len(keys), 0.2, 3)
    assert len(val) == round(len(keys) * 0.2) and sorted(train + val) == list(range(len(keys)))
    assert len(model.seen) == 2
    for epoch in model.seen:  # every training item once per epoch, none of validation's
        assert sorted(epoch) == sorted(keys[i] for i in train)
    assert model.seen[0] != model.seen[1]  # reshuffled each epoch
    events = _scalars(logger)
    assert {"train_loss", "val_loss", "epoch"} <= set(events.Tags()["scalars"])
    steps = 2 * -(-len(train) // 8)
    assert [s.step for s in events.Scalars("train_loss")] == list(range(steps))
    assert len(events.Scalars("val_loss")) == 2  # one per epoch
    again = AudioDataModule(sh / "memmap", batch_size=8, val_fraction=0.2, seed=3)
    model_again, _ = _fit(again, tmp_path / "again")
    assert model_again.seen == model.seen  # deterministic, with or without workers


def test_webdataset_fit_validated_on_a_second_folder(sh, tmp_path):
    data = AudioDataModule(sh / "webdataset", batch_size=8, val_path=sh / "memmap")
    model, logger = _fit(data, tmp_path)
    for epoch in model.seen:
        assert sorted(epoch) == sorted(_keys(sh / "memmap"))  # the same items as the memmap
    assert model.seen[0] != model.seen[1]
    assert data.train_set.rank == 0 and data.train_set.world_size == 1
    events = _scalars(logger)
    assert {"train_loss", "val_loss"} <= set(events.Tags()["scalars"])
    assert all(torch.isfinite(torch.tensor(s.value)) for s in events.Scalars("train_loss"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["memmap", "webdataset"])
def test_two_ddp_ranks_read_every_item_once_per_epoch(sh, tmp_path, name):
    data = AudioDataModule(sh / name, batch_size=4, seed=1)
    model = TinyAutoencoder()
    model.rank_file = tmp_path / "rank.json"
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)  # forked ranks: their warnings do not reach here
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    keys = _keys(sh / "memmap")
    for epoch in range(2):
        both = ranks[0][epoch] + ranks[1][epoch]
        assert len(ranks[0][epoch]) == len(ranks[1][epoch]) == -(-len(keys) // 2)
        assert set(both) == set(keys) and len(both) - len(keys) == len(keys) % 2
    assert ranks[0][0] != ranks[0][1]


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_batches_cover_every_item_once_with_equal_counts(world_size, shuffle):
    size, batch_size = 10, 3
    repeats = -size % world_size
    epochs = []
    for epoch in range(2):
        shares = []
        for rank in range(world_size):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sampler = RankBatches(size, batch_size, rank, world_size, shuffle, seed=4)
            said = [str(w.message) for w in caught]
            assert said == ([f"{size} items do not split evenly over {world_size} ranks; "
                             f"{repeats} are read twice per epoch"] if repeats else [])  # fmt: skip
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler) and all(len(b) <= batch_size for b in batches)
            shares.append([i for b in batches for i in b])
        assert len({len(s) for s in shares}) == 1  # no rank waits for another
        counts = Counter(i for s in shares for i in s)
        assert set(counts) == set(range(size)) and sum(counts.values()) - size == repeats
        epochs.append(shares)
    assert (epochs[0] != epochs[1]) == shuffle
    dropped = RankBatches(size, batch_size, drop_last=True)
    assert [len(b) for b in dropped] == [3, 3, 3] and len(dropped) == 3
    with pytest.raises(ValueError, match=r"rank 2 is not in 0\.\.1"):
        RankBatches(size, batch_size, 2, 2)


def test_bad_choices_are_refused_before_any_work(sh):
    with pytest.raises(ValueError, match="not both"):
        AudioDataModule(sh / "memmap", val_path=sh / "memmap", val_fraction=0.1)
    with pytest.raises(ValueError, match=r"val_fraction is a fraction in \[0, 1\)"):
        AudioDataModule(sh / "memmap", val_fraction=1.0)
    data = AudioDataModule(sh / "webdataset", val_fraction=0.1)
    with pytest.raises(ValueError, match="webdataset: val_fraction cannot split WebDatasetShards"):
        data.setup("fit")


def test_the_loader_alone_counts_its_epochs(sh):
    data = AudioDataModule(sh / "memmap", batch_size=5, seed=2)
    loader = data.train_dataloader()
    first, second = ([k for b in loader for k in b["key"]] for _ in range(2))
    assert sorted(first) == sorted(second) == sorted(_keys(sh / "memmap")) and first != second
    assert data.val_dataloader() == []


BENCH_CSV = """step,set,method,metric,value,cpu_count,python,machine,torch,device
loader,memmap,"2 workers, batch 32, int16",items_per_s,22956.0,2,3.12,x86_64,2.9,cpu
loader,memmap,"2 workers, batch 32, int16",audio_seconds_per_s,114780.0,2,3.12,x86_64,2.9,cpu
loader,webdataset,"none, batch 32, float32",items_per_s,2009.0,2,3.12,x86_64,2.9,cpu
loader,page-cache ceiling,"numpy fancy index, batch 32",items_per_s,41000.5,2,3.12,x86_64,2.9,cpu
step,autoencoder,"memmap, 2 workers",ideal_ms,3.10,2,3.12,x86_64,2.9,cpu
step,autoencoder,"memmap, 2 workers",actual_ms,4.25,2,3.12,x86_64,2.9,cpu
step,autoencoder,"memmap, 2 workers",stall_percent,27.1,2,3.12,x86_64,2.9,cpu
shard,converted set,memmap,disk_bytes,5120128,2,3.12,x86_64,2.9,cpu
"""


def test_bench_results_become_tensorboard_scalars(tmp_path):
    results = tmp_path / "results.csv"
    results.write_text(BENCH_CSV)
    assert log_bench_scalars(results, tmp_path / "tb", step=0) == 8
    assert log_bench_scalars(results, tmp_path / "tb", step=1) == 8  # a later run of the bench
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "loader/items_per_s/memmap/2_workers_batch_32_int16" in tags
    assert "step/stall_percent/autoencoder/memmap_2_workers" in tags
    assert "step/actual_ms/autoencoder/memmap_2_workers" in tags
    assert len(tags) == 8
    stall = events.Scalars("step/stall_percent/autoencoder/memmap_2_workers")
    assert [(s.step, round(s.value, 3)) for s in stall] == [(0, 27.1), (1, 27.1)]
    with open(results, newline="") as fh:
        assert next(csv.reader(fh))[:5] == ["step", "set", "method", "metric", "value"]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"other\.csv: no step, set, method, metric, value"):
        log_bench_scalars(tmp_path / "other.csv", tmp_path / "tb2")


def test_a_stall_within_noise_has_no_scalar_and_other_words_are_refused(tmp_path):
    """The bench writes "within noise" for a stall it cannot tell from 0: no scalar (never
    a 0); any other value that is not a number is a broken file."""
    noise = BENCH_CSV.replace("stall_percent,27.1,", "stall_percent,within noise,")
    results = tmp_path / "results.csv"
    results.write_text(noise)
    assert log_bench_scalars(results, tmp_path / "tb", step=0) == 7
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "step/stall_percent/autoencoder/memmap_2_workers" not in events.Tags()["scalars"]
    results.write_text(BENCH_CSV.replace("stall_percent,27.1,", "stall_percent,n/a,"))
    with pytest.raises(ValueError, match=r"results\.csv: value 'n/a' is not a number"):
        log_bench_scalars(results, tmp_path / "tb2")


IMPORTS_LIGHTNING = (
    r"^\s*(from|import) (lightning|pytorch_lightning|tensorboard|torch\.utils\.tensorboard)\b"
)


def test_lightning_and_tensorboard_are_imported_only_by_loaders_lightning():
    code = "import loaders; from loaders import *; import loaders.open, loaders.batched"
    assert modules_loaded_by(code, ("lightning", "tensorboard", "torch.utils.tensorboard")) == []
    importers = sorted(
        path.relative_to(REPO).as_posix()
        for package in ("loaders", "prep", "manifests")
        for path in (REPO / package).rglob("*.py")
        if re.search(IMPORTS_LIGHTNING, path.read_text(), re.MULTILINE)
    )
    assert importers == ["loaders/lightning.py"]
