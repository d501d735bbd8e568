"""PyTorch Lightning and TensorBoard: any audioprep folder as a ``LightningDataModule``, and
a benchmark's ``results.csv`` as TensorBoard scalars.

    from loaders.lightning import AudioDataModule
    data = AudioDataModule("shards/memmap", batch_size=32, num_workers=2, val_fraction=0.1)
    trainer.fit(model, datamodule=data)

The loaders are :func:`~loaders.batched.batch_loader`'s (whole-batch reads, shared slots),
split among DDP ranks here from the trainer's ``global_rank`` and ``world_size``, since
Lightning only re-samples a plain ``DataLoader``. The only module that imports lightning
or tensorboard.
"""

from __future__ import annotations

import csv
import inspect
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset, IterableDataset, Sampler

from loaders.batched import batch_loader
from loaders.collate import to_device
from loaders.formats import FormatReader, as_reader, reader_class, reader_names
from loaders.open import open_dataset
from loaders.sample import parse_format


class RankBatches(Sampler[list[int]]):
    """One rank's batches of each epoch, split as ``DistributedSampler`` splits: the
    epoch's order (shuffled from ``seed + epoch``, the same on every rank), wrapped round
    to a multiple of ``world_size``, every ``world_size``-th item from ``rank``. Every item
    once per epoch over all ranks, and the same number of batches on each (the fewest
    repeats that give it, with a warning)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.size, self.batch_size, self.drop_last = size, batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.per_rank = math.ceil(size / world_size)
        if self.per_rank * world_size != size:
            warnings.warn(
                f"{size} items do not split evenly over {world_size} ranks; "
                f"{self.per_rank * world_size - size} are read twice per epoch",
                stacklevel=2,
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        """This rank's items of the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        if order:
            order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self):
        mine = self.indices()
        for start in range(0, len(mine), self.batch_size):
            batch = mine[start : start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)


class Part(FormatReader, Dataset):
    """Some of a map-style dataset's items (a train or validation share), read through the
    dataset's own batch reads: a ``Subset`` would hide them from the loaders."""

    def __init__(self, dataset: Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)
        reader = as_reader(dataset)
        self.reads_batches, self.reads_into = reader.reads_batches, reader.reads_into
        self._reader = reader

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return self._reader.__getitems__([self.indices[i] for i in indices])

    def read_batch(self, indices: list[int], mask: bool = True, allocate=None) -> dict:
        return self._reader.read_batch([self.indices[i] for i in indices], mask, allocate)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def split_items(size: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation indices: ``round(size * val_fraction)`` items drawn with
    ``seed`` for validation, the rest for training, each in the dataset's order."""
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    held_out = set(chosen[: round(size * val_fraction)].tolist())
    return [i for i in range(size) if i not in held_out], sorted(held_out)


class EpochLoader:
    """A :func:`batch_loader` whose epoch is set before each pass, on the rank split and
    the dataset: the trainer's ``current_epoch`` (so a resumed run goes on where it
    stopped) or, with no trainer, counted here (a pass cut short still counts)."""

    def __init__(self, loader, targets: list, epoch_of: Callable[[], int | None]) -> None:
        self.loader = loader
        self.targets = [t for t in targets if callable(getattr(t, "set_epoch", None))]
        self.epoch_of = epoch_of
        self.next_epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        epoch = self.epoch_of()
        epoch = self.next_epoch if epoch is None else epoch
        for target in self.targets:
            target.set_epoch(epoch)
        try:
            yield from self.loader
        finally:
            self.next_epoch = epoch + 1


def _takes_rank(path: str | Path) -> bool:
    """Whether the folder's reader splits itself among ranks (takes ``rank`` and
    ``world_size``): WebDataset shards do, map-style readers are split by the loader."""
    fmt_file = Path(path) / "format.json"
    if not fmt_file.exists():
        return False
    name = parse_format(fmt_file.read_bytes(), fmt_file).get("format")
    if name not in reader_names():
        return False  # open_dataset names the problem
    return {"rank", "world_size"} <= set(inspect.signature(reader_class(name)).parameters)


class AudioDataModule(LightningDataModule):
    """Any folder ``prep convert`` or ``prep shard`` wrote (or plain audio) for
    ``Trainer.fit``.

    Validation comes from ``val_path`` (a second folder), or ``val_fraction`` of a
    map-style set's items drawn with ``seed``; with neither there is none.
    ``dataset_options`` go to :func:`~loaders.open.open_dataset` (``dtype="int16"``,
    ``with_mel=True``...); ``loader_options`` to :func:`~loaders.batched.batch_loader`
    (``shared_slots=True``, ``persistent_workers=True``...). Training batches are
    shuffled per epoch (``shuffle``), the same way on every rank, and each rank reads its
    own share. Batches reach the device through :func:`~loaders.collate.to_device`, so
    int16 audio crosses as int16 and becomes float32 there.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 32,
        num_workers: int = 0,
        *,
        val_path: str | Path | None = None,
        val_fraction: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        dataset_options: dict | None = None,
        **loader_options,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction is a fraction in [0, 1), not {val_fraction}")
        if val_path is not None and val_fraction:
            raise ValueError("give val_path or val_fraction, not both")
        self.path, self.val_path, self.val_fraction = path, val_path, val_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.dataset_options = dict(dataset_options or {})
        self.loader_options = loader_options
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _open(self, path: str | Path) -> Dataset:
        options = dict(self.dataset_options)
        if _takes_rank(path):
            options["rank"], options["world_size"] = self._rank()
        return open_dataset(path, **options)

    def setup(self, stage: str | None = None) -> None:
        """Open the folders (on every rank, once it knows its rank)."""
        if self.train_set is not None:
            return
        dataset = self._open(self.path)
        if self.val_path is not None:
            self.train_set, self.val_set = dataset, self._open(self.val_path)
        elif self.val_fraction:
            if isinstance(dataset, IterableDataset):
                raise ValueError(
                    f"{self.path}: val_fraction cannot split {type(dataset).__name__} "
                    "(it streams its items): give a val_path"
                )
            train, val = split_items(len(dataset), self.val_fraction, self.seed)
            self.train_set, self.val_set = Part(dataset, train), Part(dataset, val)
        else:
            self.train_set = dataset

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> EpochLoader:
        options = {"num_workers": self.num_workers, **self.loader_options}
        if isinstance(dataset, IterableDataset):  # splits itself among ranks and workers
            loader = batch_loader(
                dataset, self.batch_size, shuffle=shuffle, seed=self.seed,
                drop_last=drop_last, **options,
            )  # fmt: skip
            return EpochLoader(loader, [dataset], self._epoch)
        rank, world_size = self._rank()
        batches = RankBatches(
            len(dataset), self.batch_size, rank, world_size, shuffle, self.seed, drop_last
        )
        loader = batch_loader(dataset, self.batch_size, batch_sampler=batches, **options)
        return EpochLoader(loader, [batches, dataset], self._epoch)

    def train_dataloader(self) -> EpochLoader:
        self.setup()
        return self._loader(self.train_set, self.shuffle, self.drop_last)

    def val_dataloader(self) -> EpochLoader | list:
        self.setup()
        if self.val_set is None:
            return []  # Lightning then skips validation
        return self._loader(self.val_set, shuffle=False, drop_last=False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        return to_device(batch, device)


BENCH_COLUMNS = ("step", "set", "method", "metric", "value")
"""The columns of ``prep bench``'s results.csv this reads (the rest describe the machine)."""


def _tag(*parts: str) -> str:
    """A TensorBoard tag: the parts joined by ``/`` (the first groups the charts)."""
    return "/".join(re.sub(r"[^\w.+-]+", "_", part.strip()).strip("_") for part in parts)


WITHIN_NOISE = "within noise"
"""A stall in ``prep bench``'s results.csv where the fed step was no slower than the ideal."""


def log_bench_scalars(results_csv: str | Path, logdir: str | Path, step: int = 0) -> int:
    """Write every figure of a ``prep bench`` results.csv (loader items/s, training step
    times, data-stall share, per format and method...) as a TensorBoard scalar at
    ``step``, tagged ``STEP/METRIC/SET/METHOD``; return how many were written.

    Runs of the bench logged at increasing ``step`` draw each figure as a line over runs.
    A data stall ``within noise`` (the bench's word for a fed step no slower than the
    ideal one) has no number and no scalar; any other value that is not a number is a
    :class:`ValueError`.
    """
    from torch.utils.tensorboard import SummaryWriter

    results_csv = Path(results_csv)
    with open(results_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        missing = [c for c in BENCH_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{results_csv}: no {', '.join(missing)} column (not a bench results.csv)")
    scalars = {}
    for row in rows:
        if row["value"] == WITHIN_NOISE:
            continue
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            raise ValueError(f"{results_csv}: value {row['value']!r} is not a number") from None
        scalars[_tag(row["step"], row["metric"], row["set"], row["method"])] = value
    with SummaryWriter(log_dir=str(logdir)) as writer:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)
    return len(scalars)
