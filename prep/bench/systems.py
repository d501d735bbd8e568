"""Loader rows of other systems, each at one setting, on the folders the shard phase kept:
NVIDIA DALI pipelines (``loaders.dali_loader``; the recommendation may pick them) and the
ecosystems' own loaders, Lhotse and Hugging Face ``datasets`` (shown for comparison only).

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

DALI_THREADS = 2
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


def _dali_kwargs(mel: bool) -> dict:
    return {
        "shuffle": True,
        "dtype": "int16",
        "num_threads": DALI_THREADS,
        **({"mel": True} if mel else {}),
    }


def _dali_make(folder: Path, mel: bool, dali_loader, batch_size: int):
    return dali_loader(folder, batch_size, **_dali_kwargs(mel))


def _dali_code(folder: Path, mel: bool, batch_size: int) -> str:
    args = [_py(str(folder)), f"batch_size={batch_size}"]
    args += [f"{k}={_py(v)}" for k, v in _dali_kwargs(mel).items()]
    return f"from loaders import dali_loader\nloader = dali_loader({', '.join(args)})"


def dali_pipeline(folder: Path, name: str, mel: bool = False) -> Pipeline:
    """``dali_loader`` over a shard folder, int16, shuffled, ``DALI_THREADS`` threads."""
    return Pipeline(
        name,
        _items(folder),
        _import_dali_loader,
        partial(_dali_make, folder, mel),
        workers=DALI_THREADS,
        threads=True,
        via="DALI",
        code_line=partial(_dali_code, folder, mel),
        returns="log-mel made in the DALI pipeline" if mel else "audio",
    )


class LhotseBatches:
    """Lhotse's sampler and ``collate_audio``, one epoch per ``for`` loop, as batches
    with our keys (``key``, ``audio`` float32, ``lengths``, ``sample_rate``)."""

    def __init__(self, sampler, collate_audio, sample_rate: int) -> None:
        self.sampler, self.collate_audio, self.sample_rate = sampler, collate_audio, sample_rate
        self.epoch = 0

    def __iter__(self) -> Iterator[dict]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        for cuts in self.sampler:
            audio, lengths = self.collate_audio(cuts)
            keys = [cut.id for cut in cuts]
            yield {"key": keys, "audio": audio, "lengths": lengths, "sample_rate": self.sample_rate}


def _open_lhotse(shar: Path):
    from lhotse import CutSet
    from lhotse.dataset import SimpleCutSampler
    from lhotse.dataset.collation import collate_audio

    return CutSet.from_shar(in_dir=shar), SimpleCutSampler, collate_audio


def _lhotse_make(sample_rate: int, opened, batch_size: int) -> LhotseBatches:
    cuts, sampler, collate_audio = opened
    batches = sampler(cuts, max_cuts=batch_size)  # in order: see lhotse_pipeline
    return LhotseBatches(batches, collate_audio, sample_rate)


def lhotse_pipeline(folder: Path) -> Pipeline:
    """``CutSet.from_shar`` over the ``lhotse_shar`` folder, ``SimpleCutSampler`` batches
    of ``max_cuts`` cuts collated by ``collate_audio``, in this process (0 workers).

    The cuts stream in order: the sampler's ``shuffle=True`` fills a buffer of up to
    10,000 cuts (here the whole set) before its first batch, which the timing leaves out,
    so the timed batches would only be collated from memory."""
    return Pipeline(
        LHOTSE_NAME,
        _items(folder),
        partial(_open_lhotse, folder / "shar"),
        partial(_lhotse_make, _sample_rate(folder)),
        dtype="float32",
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


def _datasets_make(sample_rate: int, ds, batch_size: int) -> DataLoader:
    collate = partial(_datasets_batch, sample_rate)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0, collate_fn=collate)


def datasets_pipeline(folder: Path, cache: Path) -> Pipeline:
    """``load_dataset("parquet", data_dir=hf/)`` ``.with_format("torch")`` through a torch
    DataLoader in this process; its Arrow cache goes to ``cache``."""
    return Pipeline(
        DATASETS_NAME,
        _items(folder),
        partial(_open_datasets, folder, cache),
        partial(_datasets_make, _sample_rate(folder)),
        dtype="float32",
    )


def other_loaders(shards: Path, cache: Path) -> dict[str, Pipeline]:
    """Every other system's row the shard folders allow: DALI over memmap, segments and
    webdataset (and memmap with mel in the pipeline), Lhotse over ``lhotse_shar/``, and
    ``datasets`` over ``hf/`` where that format is registered."""
    rows = [
        dali_pipeline(shards / name, f"{name} via DALI")
        for name in DALI_FORMATS
        if (shards / name).is_dir()
    ]
    if (shards / "memmap").is_dir():
        rows.append(dali_pipeline(shards / "memmap", DALI_MEL_NAME, mel=True))
    if (shards / "lhotse_shar").is_dir():
        rows.append(lhotse_pipeline(shards / "lhotse_shar"))
    if "hf" in writer_names() and (shards / "hf").is_dir():
        rows.append(datasets_pipeline(shards / "hf", cache))
    return {row.name: row for row in rows}
