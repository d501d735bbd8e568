"""``open_dataset``: any folder written by ``prep convert`` or ``prep shard``, opened as the
right dataset from its ``format.json`` (the reader registered under its name in
:mod:`loaders.formats`) or ``manifest.jsonl``."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, IterableDataset

from loaders.formats import FormatReader, reader_class, reader_names
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
        name = fmt.get("format")
        cls = _reader(name, f"{path}/format.json")
        if not cls.reads_object_storage:
            raise ValueError(f"{path}: {name} folders are not read from object storage")
        return cls(path, **options)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or manifest")
    fmt_file = path / "format.json"
    if fmt_file.exists():
        name = parse_format(fmt_file.read_bytes(), fmt_file).get("format")
        return _reader(name, fmt_file)(path, **options)
    if (path / "manifest.jsonl").exists():
        from loaders.converted import ConvertedDataset

        return ConvertedDataset(path, **options)
    from loaders.onthefly import OnTheFlyDataset

    dataset = OnTheFlyDataset(path, **options)
    if path.is_dir() and not len(dataset):
        raise FileNotFoundError(f"{path}: no audio, format.json or manifest.jsonl in it")
    return dataset


def _reader(name: object, fmt_file: str | Path) -> type[FormatReader]:
    if not isinstance(name, str) or name not in reader_names():
        raise FormatError(f"{fmt_file}: unknown format {name!r}")
    return reader_class(name)
