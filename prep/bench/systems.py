"""Loader rows of other systems on the folders the shard phase kept: NVIDIA DALI pipelines
(``loaders.dali_loader``, at one thread and at one per core; the recommendation may pick
them) and the ecosystems' own loaders, Lhotse and Hugging Face ``datasets``, with no
workers and with the sweep's most (shown for comparison only).

Each system is imported when its row is first measured, never by ``prep bench`` itself: a
system that is not installed leaves its row out, with a note in the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from prep.bench.loader_bench import Pipeline, _py
from prep.writers import writer_names

DALI_FORMATS = ("memmap", "segments", "webdataset")
DALI_MEL_NAME = "memmap via DALI, mel in the pipeline"
LHOTSE_NAME = "lhotse CutSet.from_shar"
DATASETS_NAME = "datasets with_format(torch)"


def _items(folder: Path) -> int:
    """Items in the folder's manifest: one epoch of every row read from it."""
    with open(folder / "manifest.jsonl", "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _sample_rate(folder: Path) -> int:
    return int(json.loads((folder / "format.json").read_bytes())["sample_rate"])


def _import_dali_loader():
    from loaders.dali import dali_loader  # DALI itself, only here

    return dali_loader


def _dali_kwargs(mel: bool, threads: int) -> dict:
    return {
        "shuffle": True,
        "dtype": "int16",
        "num_threads": threads,
        **({"mel": True} if mel else {}),
    }


def _dali_make(folder: Path, mel: bool, dali_loader, batch_size: int, threads: int):
    return dali_loader(folder, batch_size, **_dali_kwargs(mel, threads))


def _dali_code(folder: Path, mel: bool, batch_size: int, threads: int) -> str:
    args = [_py(str(folder)), f"batch_size={batch_size}"]
    args += [f"{k}={_py(v)}" for k, v in _dali_kwargs(mel, threads).items()]
    return f"from loaders import dali_loader\nloader = dali_loader({', '.join(args)})"


def dali_pipeline(folder: Path, name: str, threads: tuple[int, ...], mel: bool = False) -> Pipeline:
    """``dali_loader`` over a shard folder, int16, shuffled, at each of ``threads`` (DALI's
    own CPU threads, in this process)."""
    return Pipeline(
        name,
        _items(folder),
        _import_dali_loader,
        partial(_dali_make, folder, mel),
        settings=threads,
        threads=True,
        via="DALI",
        code_line=partial(_dali_code, folder, mel),
        returns="log-mel made in the DALI pipeline" if mel else "audio",
    )


class LhotseAudio(torch.utils.data.Dataset):
    """Lhotse's map-style dataset shape: a batch of cuts in, a batch with our keys out
    (``key``, ``audio`` float32 by ``collate_audio``, ``lengths``, ``sample_rate``)."""

    def __init__(self, collate_audio, sample_rate: int) -> None:
        self.collate_audio, self.sample_rate = collate_audio, sample_rate

    def __getitem__(self, cuts) -> dict:
        audio, lengths = self.collate_audio(cuts)
        keys = [cut.id for cut in cuts]
        return {"key": keys, "audio": audio, "lengths": lengths, "sample_rate": self.sample_rate}


class LhotseBatches:
    """A sampler's batches through :class:`LhotseAudio` in this process, one epoch per
    ``for`` loop."""

    def __init__(self, sampler, dataset: LhotseAudio) -> None:
        self.sampler, self.dataset = sampler, dataset
        self.epoch = 0

    def __iter__(self) -> Iterator[dict]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        for cuts in self.sampler:
            yield self.dataset[cuts]


def _open_lhotse(shar: Path):
    import lhotse.dataset
    import lhotse.dataset.collation
    import lhotse.dataset.iterable_dataset

    return shar, lhotse


def _lhotse_make(sample_rate: int, opened, batch_size: int, workers: int):
    shar, lhotse = opened
    dataset = LhotseAudio(lhotse.dataset.collation.collate_audio, sample_rate)
    # with workers, Lhotse's recipe: each worker samples from shards of its own
    cuts = lhotse.CutSet.from_shar(in_dir=shar, split_for_dataloading=workers > 0)
    sampler = lhotse.dataset.SimpleCutSampler(cuts, max_cuts=batch_size)  # in order
    if workers == 0:
        return LhotseBatches(sampler, dataset)
    wrapper = lhotse.dataset.iterable_dataset.IterableDatasetWrapper(dataset, sampler)
    return DataLoader(wrapper, batch_size=None, num_workers=workers, persistent_workers=True)


def lhotse_pipeline(folder: Path, workers: tuple[int, ...]) -> Pipeline:
    """``CutSet.from_shar`` over the ``lhotse_shar`` folder, ``SimpleCutSampler`` batches
    of ``max_cuts`` cuts collated by ``collate_audio``: in this process with no workers;
    with workers, as Lhotse's Shar recipe has it (``split_for_dataloading=True``, the
    sampler in an ``IterableDatasetWrapper``, each worker reading shards of its own).

    The cuts stream in order: the sampler's ``shuffle=True`` fills a buffer of up to
    10,000 cuts (here the whole set) before its first batch, which the timing leaves out,
    so the timed batches would only be collated from memory."""
    return Pipeline(
        LHOTSE_NAME,
        _items(folder),
        partial(_open_lhotse, folder / "shar"),
        partial(_lhotse_make, _sample_rate(folder)),
        dtype="float32",
        settings=workers,
    )


def _open_datasets(folder: Path, cache: Path):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a local folder: never the Hub
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    ds = datasets.load_dataset("parquet", data_dir=str(folder), split="train", cache_dir=str(cache))
    return ds.with_format("torch")


def _datasets_batch(sample_rate: int, items: list[dict]) -> dict:
    """``datasets`` hands out torchcodec decoders: decode each, pad to the longest."""
    audio = [item["audio"].get_all_samples().data[0] for item in items]
    return {
        "key": [item["key"] for item in items],
        "audio": pad_sequence(audio, batch_first=True),
        "lengths": torch.tensor([len(a) for a in audio]),
        "sample_rate": sample_rate,
    }


def _datasets_make(sample_rate: int, ds, batch_size: int, workers: int) -> DataLoader:
    collate = partial(_datasets_batch, sample_rate)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
    )


def datasets_pipeline(folder: Path, cache: Path, workers: tuple[int, ...]) -> Pipeline:
    """``load_dataset("parquet", data_dir=hf/)`` ``.with_format("torch")`` through a torch
    DataLoader with each of ``workers``; its Arrow cache goes to ``cache``."""
    return Pipeline(
        DATASETS_NAME,
        _items(folder),
        partial(_open_datasets, folder, cache),
        partial(_datasets_make, _sample_rate(folder)),
        dtype="float32",
        settings=workers,
    )


def other_loaders(shards: Path, cache: Path, workers: list[int]) -> dict[str, Pipeline]:
    """Every other system's row the shard folders allow: DALI over memmap, segments and
    webdataset (and memmap with mel in the pipeline) at one thread and at the sweep's most
    workers' count of threads, Lhotse over ``lhotse_shar/`` and ``datasets`` over ``hf/``
    (where that format is registered) with no workers and the sweep's most."""
    threads = tuple(sorted({1, max(1, max(workers))}))
    ends = tuple(sorted({0, max(workers)}))
    rows = [
        dali_pipeline(shards / name, f"{name} via DALI", threads)
        for name in DALI_FORMATS
        if (shards / name).is_dir()
    ]
    if (shards / "memmap").is_dir():
        rows.append(dali_pipeline(shards / "memmap", DALI_MEL_NAME, threads, mel=True))
    if (shards / "lhotse_shar").is_dir():
        rows.append(lhotse_pipeline(shards / "lhotse_shar", ends))
    if "hf" in writer_names() and (shards / "hf").is_dir():
        rows.append(datasets_pipeline(shards / "hf", cache, ends))
    return {row.name: row for row in rows}
