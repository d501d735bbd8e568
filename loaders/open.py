"""``open_dataset``: any folder written by ``prep convert`` or ``prep shard``, opened as the
right dataset from its ``format.json`` / ``manifest.jsonl``."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, IterableDataset

from loaders.sample import FormatError, parse_format, read_folder
from manifests import is_url


def open_dataset(path: str | Path, **options) -> Dataset | IterableDataset:
    """The dataset for ``path``; ``options`` go to its class (``dtype="int16"``, crops...).

    A ``prep shard`` format folder opens as its reader; a ``prep convert`` folder as
    :class:`~loaders.converted.ConvertedDataset`; a folder of original audio, or a
    manifest of it, as :class:`~loaders.onthefly.OnTheFlyDataset`. A path that does not
    exist, or a folder holding none of these, is a :class:`FileNotFoundError`; a
    ``format.json`` that is not a JSON object a :class:`~loaders.sample.FormatError`.
    """
    if is_url(path):  # object storage: streamed shards only
        fmt, _ = read_folder(path)
        if fmt.get("format") != "webdataset":
            raise ValueError(f"{path}: only webdataset shards are read from object storage")
        from loaders.webdataset import WebDatasetShards

        return WebDatasetShards(path, **options)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or manifest")
    fmt_file = path / "format.json"
    if fmt_file.exists():
        name = parse_format(fmt_file.read_bytes(), fmt_file).get("format")
        if name == "segments":
            from loaders.segments import SegmentsDataset as cls
        elif name == "mel":
            from loaders.mel import MelDataset as cls
        elif name == "webdataset":
            from loaders.webdataset import WebDatasetShards as cls
        elif name == "hdf5":
            from loaders.hdf5 import HDF5Dataset as cls
        elif name == "memmap":
            from loaders.memmap import MemmapDataset as cls
        else:
            raise FormatError(f"{fmt_file}: unknown format {name!r}")
        return cls(path, **options)
    if (path / "manifest.jsonl").exists():
        from loaders.converted import ConvertedDataset

        return ConvertedDataset(path, **options)
    from loaders.onthefly import OnTheFlyDataset

    dataset = OnTheFlyDataset(path, **options)
    if path.is_dir() and not len(dataset):
        raise FileNotFoundError(f"{path}: no audio, format.json or manifest.jsonl in it")
    return dataset
