"""The reader contract and the registry :func:`~loaders.open.open_dataset` opens folders by.

A ``prep shard`` format is read by one :class:`FormatReader` subclass, registered under the
name its ``format.json`` records (``"format"``); its writer is registered in
:mod:`prep.writers`. A reader checks its own format.json entry when it is made
(:meth:`FormatReader.read_folder`: the name and the ``format_versions`` it reads, then
whatever its files promise), and says with class attributes which batch reads it has, so
:func:`~loaders.batched.batch_loader` and :mod:`loaders.shared_batches` ask the reader
rather than probe for methods. Reader modules are imported when a name is first opened:
opening a memmap folder never imports h5py or webdataset.
"""

from __future__ import annotations

import functools
import importlib
from typing import ClassVar

FORMAT_VERSIONS = (1,)
"""The ``format.json`` versions the built-in readers understand (what ``prep shard`` writes)."""

_READERS = {  # format.json's "format" -> its reader
    "segments": "loaders.segments:SegmentsDataset",
    "mel": "loaders.mel:MelDataset",
    "webdataset": "loaders.webdataset:WebDatasetShards",
    "hdf5": "loaders.hdf5:HDF5Dataset",
    "memmap": "loaders.memmap:MemmapDataset",
    "lhotse_shar": "loaders.lhotse_shar:LhotseSharDataset",
    "kaldi": "loaders.kaldi:KaldiDataset",
    "tensordict": "loaders.tensordict:TensorDictDataset",
    "hf": "loaders.hf:HFParquetDataset",
    "nemo_tarred": "loaders.nemo_tarred:NemoTarredDataset",
}


class FormatReader:
    """A dataset over one format's folder (mixed in before ``Dataset``/``IterableDataset``).

    Capabilities, all off by default:

    - ``reads_batches``: :meth:`read_batch` returns a whole pad_collate-shaped batch from
      one read (the loaders then hand out batches of indices, not single ones);
    - ``reads_into``: :meth:`read_batch` writes into what ``allocate`` gives it (a shared
      slot), so a batch is copied once;
    - ``reads_object_storage``: it opens an ``s3://`` (fsspec) folder;
    - ``shuffles_itself``: an iterable that orders its own items from its ``shuffle`` and
      ``seed`` attributes (a sampler cannot order an iterable).

    :meth:`__getitems__` (the DataLoader's batch of items) and :meth:`items_per_worker`
    have defaults a reader overrides when it can do better.
    """

    format_name: ClassVar[str] = ""
    format_versions: ClassVar[tuple[int, ...]] = FORMAT_VERSIONS
    reads_batches: ClassVar[bool] = False
    reads_into: ClassVar[bool] = False
    reads_object_storage: ClassVar[bool] = False
    shuffles_itself: ClassVar[bool] = False

    def open_folder(self, folder, dtype: str | None = None) -> None:
        """What a reader of one local folder sets first: ``folder``, ``format`` and
        ``entries`` (as :meth:`read_folder` checks them), ``sample_rate``, and ``dtype``
        (checked) when it hands out audio."""
        from pathlib import Path

        from loaders.sample import check_dtype

        self.folder = Path(folder)
        self.format, self.entries = self.read_folder(self.folder)
        self.sample_rate = int(self.format["sample_rate"])
        if dtype is not None:
            self.dtype = check_dtype(dtype)

    def read_folder(self, folder) -> tuple[dict, list[dict]]:
        """The folder's format.json and manifest, format.json held to this reader's
        ``format_name`` and ``format_versions`` (a :class:`~loaders.sample.FormatError`)."""
        from loaders.sample import read_folder

        return read_folder(folder, self.format_name, self.format_versions)

    def read_batch(self, indices: list[int], mask: bool = True, allocate=None) -> dict:
        """The batch for ``indices`` (pad_collate's shape; no ``attention_mask`` when
        ``mask`` is false). With ``reads_into``, ``allocate(name, shape, dtype)`` gives a
        tensor its destination. Only readers with ``reads_batches`` have it."""
        raise NotImplementedError(f"{type(self).__name__} has no whole-batch read")

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The samples for ``indices``: one by one unless the reader reads them together."""
        return [self[i] for i in indices]

    def items_per_worker(self, workers: int) -> list[int] | None:
        """Items each of ``workers`` DataLoader workers yields per epoch, for an iterable
        that splits itself among them; None when it does not say."""
        return None


class _ItemReads(FormatReader):
    """Any other dataset (a user's, a ``Subset``...) seen through the contract: read item
    by item, or through its own ``__getitems__`` where it has one (torch's protocol)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self._getitems = getattr(dataset, "__getitems__", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        if self._getitems is not None:
            return self._getitems(indices)
        return [self.dataset[i] for i in indices]


def as_reader(dataset) -> FormatReader:
    """``dataset`` itself when it is a :class:`FormatReader`, else a view of it with none
    of the capabilities."""
    return dataset if isinstance(dataset, FormatReader) else _ItemReads(dataset)


class Registry:
    """Names to classes, each given as the class or as ``"module:Class"`` imported when
    first asked for (so a registry lists formats without importing their libraries).
    ``prep.writers`` keeps its writers in one too."""

    def __init__(self, entries: dict[str, str | type]) -> None:
        self._entries = dict(entries)

    def register(self, name: str, cls: str | type) -> None:
        """Add (or replace) ``name``."""
        self._entries[name] = cls
        self.get.cache_clear()

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plug-in's test cleaning up after itself)."""
        del self._entries[name]
        self.get.cache_clear()

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (the built-ins first)."""
        return tuple(self._entries)

    @functools.cache  # noqa: B019 - registries live as long as the process
    def get(self, name: str) -> type:
        """The class of ``name`` (a :class:`KeyError` when none is registered)."""
        cls = self._entries[name]
        if isinstance(cls, str):
            module, _, attr = cls.partition(":")
            cls = getattr(importlib.import_module(module), attr)
        return cls


READERS = Registry(_READERS)


def register_reader(name: str, reader: str | type[FormatReader]) -> None:
    """Add (or replace) the reader of format ``name``: its class, or ``"module:Class"``
    to import when first opened. Plug-ins and tests call it."""
    READERS.register(name, reader)


def reader_names() -> tuple[str, ...]:
    """Every registered format."""
    return READERS.names()


def reader_class(name: str) -> type[FormatReader]:
    """The reader class of format ``name`` (a :class:`KeyError` when none is registered)."""
    return READERS.get(name)
