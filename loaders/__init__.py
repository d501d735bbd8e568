"""What training code imports. Light on import (PEP 562: each name loads its module on first
use): torch loads only with what needs it, so ``prep convert`` can use ``loaders.audio``
without it, and decoding (``loaders.audio``: soxr, PyAV, ffmpeg) loads only with the
on-the-fly loader and the noise bank. Never imports prep, click or joblib.

    from loaders import open_dataset, pad_collate
    ds = open_dataset("shards/memmap", dtype="int16")
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "open_dataset": "loaders.open",
    "FormatReader": "loaders.formats",
    "register_reader": "loaders.formats",
    "ConvertedDataset": "loaders.converted",
    "SegmentsDataset": "loaders.segments",
    "MelDataset": "loaders.mel",
    "HDF5Dataset": "loaders.hdf5",
    "MemmapDataset": "loaders.memmap",
    "WebDatasetShards": "loaders.webdataset",
    "OnTheFlyDataset": "loaders.onthefly",
    "LogMel": "loaders.mel",
    "Fbank": "loaders.mel",
    "HFParquetDataset": "loaders.hf",
    "NemoTarredDataset": "loaders.nemo_tarred",
    "pad_collate": "loaders.collate",
    "to_device": "loaders.collate",
    "batch_loader": "loaders.batched",
    "DurationBucketSampler": "loaders.sampler",
    "ThreadedLoader": "loaders.threaded",
    "Augment": "loaders.augment",
    "NoiseBank": "loaders.augment",
    "dali_loader": "loaders.dali",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'loaders' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
