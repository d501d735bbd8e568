"""Reader for ``prep shard --format nemo_tarred``: map-style over NeMo's tar shards.

NeMo reads these shards itself (``tarred_audio_filepaths: audio_{0..N-1}.tar`` with
``tarred_audio_manifest.json``); this reader is for checking them and for training
outside NeMo. At open, each shard's member headers are read once (where each member's
bytes start); an item is then one seek and one read in its shard. A member missing from
its shard, or of another name or length, is a :class:`~loaders.sample.FormatError`.
"""

from __future__ import annotations

import io
import tarfile
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


class NemoTarredDataset(FormatReader, Dataset):
    format_name = "nemo_tarred"

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.open_folder(folder, dtype)
        shards = self.format.get("shards")
        world = self.format.get("nemo_world_size") or 1
        if not isinstance(shards, list) or len(shards) % world:
            raise FormatError(
                f"{self.folder / 'format.json'}: shards {shards!r} are not a multiple of "
                f"the world size {world}"
            )
        self._where: list[tuple[str, int, int]] = []  # per item: shard, data offset, size
        index: dict[str, dict[str, tuple[int, int]]] = {}
        for entry in self.entries:
            shard = entry.get("shard")
            if shard not in shards:
                raise FormatError(f"{self.folder}: {entry.get('key')!r} names shard {shard!r}")
            if shard not in index:
                index[shard] = self._members(self.folder / shard)
            found = index[shard].get(entry.get("member"))
            if found is None:
                raise FormatError(f"{self.folder / shard}: no member {entry.get('member')!r}")
            self._where.append((shard, *found))

    @staticmethod
    def _members(path: Path) -> dict[str, tuple[int, int]]:
        try:
            with tarfile.open(path) as tar:
                return {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise FormatError(f"{path}: not a readable tar shard ({exc})") from None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        shard, offset, size = self._where[index]
        path = self.folder / shard
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(size)
        if len(data) != size:
            raise FormatError(f"{path}: {entry['member']} is cut short (truncated shard)")
        frames = stored_samples(self.format, entry)
        audio = read_pcm16(io.BytesIO(data), f"{path}:{entry['member']}", self.sample_rate, frames)
        return make_sample(entry, self.sample_rate, audio=audio_tensor(audio, self.dtype))
