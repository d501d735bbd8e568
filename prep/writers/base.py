"""The writer contract: what a training format tells ``prep shard`` and ``prep verify``.

A format is one :class:`FormatWriter` subclass here and one reader in ``loaders`` (see
:mod:`loaders.formats`), each registered by the name ``format.json`` records. ``prep shard``
asks the writer, never the format's name, what to do:

- ``per_item``: the workers write one file per item as they cut it (``write_item``, the
  manifest line's ``location``); otherwise the writer runs once, after the workers, over
  every item in order, reading the samples the workers staged (``write_all``).
- ``computes_mel``: choosing the format makes the run compute log-mel for every item;
  ``carries_mel``: the format stores that mel when it was computed (its manifest lines get
  the items' mel fields, its format.json the mel settings).
- ``streams_to_object_storage``: it can be written to an ``s3://`` OUT (files written once,
  front to back, through :func:`prep.writers.files.open_output`).
- ``needs_fixed_length``: every item must be one length (``--segment`` with pad or drop).
- ``params``: its own settings in format.json (after the common ones), compared on rerun.
- ``validate``: its own options, checked before any work whether it was chosen or not (a
  bad value is a bad option either way).
- ``verify``: what ``prep verify`` checks of its files beyond the common checks (every
  ``files`` entry's size and sha256, the manifest's keys and ``num_items``).

Writers are stateless: their methods take the run's options (:class:`prep.shard.ShardOptions`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from prep.segmenting import key_folder
from prep.writers.files import write_once


@dataclass
class WrittenFormat:
    """What an aggregate writer wrote: ``shard`` turns it into the manifest and format.json."""

    locations: list[dict]
    """Per item, in the items' order: where it is (merged into its manifest line)."""
    files: dict[str, dict]
    """``{name: {"size": bytes, "sha256": hex}}`` of every file written, for ``prep verify``."""
    fields: dict = field(default_factory=dict)
    """Format.json fields of its own (``file``, ``shards``...), before ``files``."""
    summary: str | None = None
    """What was written, for the run's summary line (None: the item count)."""


class FormatWriter:
    """One training format's writing side. Subclasses set ``name`` and the flags, and
    implement ``write_item``/``relative_path`` (per item) or ``write_all`` (aggregate)."""

    name: ClassVar[str] = ""
    per_item: ClassVar[bool] = False
    computes_mel: ClassVar[bool] = False
    carries_mel: ClassVar[bool] = False
    streams_to_object_storage: ClassVar[bool] = False
    needs_fixed_length: ClassVar[bool] = False

    def params(self, options) -> dict:
        """Its own settings for format.json (``params`` too): a change rebuilds it."""
        return {}

    def validate(self, options) -> None:
        """Raise :class:`prep.errors.UsageError` for a bad value of its own options."""

    # per item: in the workers, one file per item
    def relative_path(self, meta) -> str:
        """The item's file, relative to the format's folder."""
        raise NotImplementedError

    def location(self, meta) -> dict:
        """The manifest fields that say where the item is."""
        raise NotImplementedError

    def write_item(
        self, folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options
    ) -> str:
        """Write the item's file (unless an earlier run did); return its sha256."""
        raise NotImplementedError

    # aggregate: once, over every item, from the staged rows
    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        """Write every item (``rows.audio(meta)``, ``rows.mel(meta)``), each file whole or
        not at all."""
        raise NotImplementedError

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Problems with the format's files as ``label/...: reason`` lines."""
        return iter(())


class ItemFileWriter(FormatWriter):
    """A per-item format of one file per item, ``KEY_FOLDER/KEY{suffix}`` (256 hashed
    subfolders), named in its manifest line's ``location_field``; a subclass says what
    bytes the file holds (:meth:`encode`)."""

    per_item = True
    suffix: ClassVar[str] = ""
    location_field: ClassVar[str] = ""

    def relative_path(self, meta) -> str:
        return f"{key_folder(meta.key)}/{meta.key}{self.suffix}"

    def location(self, meta) -> dict:
        return {self.location_field: self.relative_path(meta)}

    def encode(self, meta, row: np.ndarray, mel: np.ndarray | None) -> bytes:
        raise NotImplementedError

    def write_item(
        self, folder: Path, meta, row: np.ndarray, mel: np.ndarray | None, options
    ) -> str:
        """Write the item's file (unless an earlier run did); return its sha256."""
        return write_once(folder / self.relative_path(meta), self.encode(meta, row, mel))
