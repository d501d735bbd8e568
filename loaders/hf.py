"""Reader for ``prep shard --format hf``: map-style over the Parquet shards, with pyarrow.

``datasets.load_dataset(FOLDER)`` reads the same files (see the writer,
:mod:`prep.writers.hf`); this reader is for checking them and for training without
``datasets``. Each process keeps the last row group it read: reading in order reads each
group once, while a random order reads a whole group (up to 100 items) per item, so for
shuffled training prefer ``memmap``/``hdf5`` or ``datasets`` itself.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from torch.utils.data import Dataset

from loaders.formats import FormatReader
from loaders.sample import (
    FormatError,
    audio_tensor,
    make_sample,
    read_pcm16,
    stored_samples,
)


class HFParquetDataset(FormatReader, Dataset):
    format_name = "hf"

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        import pyarrow.parquet as pq  # only when such a folder is opened

        self.open_folder(folder, dtype)
        self._where: list[tuple[str, int, int]] = []  # per item: shard, row group, row in it
        groups: dict[str, list[int]] = {}
        for shard, count in zip(self.format["shards"], self.format["shard_items"], strict=True):
            path = self.folder / shard
            try:
                meta = pq.ParquetFile(path).metadata
            except (OSError, ValueError) as exc:
                raise FormatError(f"{path}: not a readable Parquet file ({exc})") from None
            if meta.num_rows != count:
                raise FormatError(f"{path}: {meta.num_rows} rows, format.json says {count}")
            features = json.loads((meta.metadata or {}).get(b"huggingface", b"{}"))
            audio = features.get("info", {}).get("features", {}).get("audio", {})
            if audio.get("sampling_rate") != self.sample_rate:
                raise FormatError(
                    f"{path}: its Audio feature is {audio!r}, not {self.sample_rate} Hz"
                )
            groups[shard] = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        for entry in self.entries:
            row, rows = entry.get("row"), groups.get(entry.get("file"))
            if rows is None or not isinstance(row, int) or not 0 <= row < sum(rows):
                raise FormatError(f"{self.folder}: {entry.get('key')!r} names no row of its file")
            group = 0
            while row >= rows[group]:
                row -= rows[group]
                group += 1
            self._where.append((entry["file"], group, row))
        self._cached: tuple[tuple[str, int], dict] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _group(self, shard: str, group: int) -> dict:
        if self._cached is None or self._cached[0] != (shard, group):
            import pyarrow.parquet as pq

            table = pq.ParquetFile(self.folder / shard).read_row_group(
                group, columns=["audio", "key"]
            )
            self._cached = ((shard, group), table.to_pydict())
        return self._cached[1]

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        shard, group, row = self._where[index]
        columns = self._group(shard, group)
        name = f"{self.folder / shard}:{entry['key']}"
        if columns["key"][row] != entry["key"]:
            raise FormatError(f"{name}: the row holds {columns['key'][row]!r} (rewritten file?)")
        data = columns["audio"][row]["bytes"]
        frames = stored_samples(self.format, entry)
        audio = read_pcm16(io.BytesIO(data), name, self.sample_rate, frames)
        return make_sample(entry, self.sample_rate, audio=audio_tensor(audio, self.dtype))
