"""Reader for ``prep shard --format lhotse_shar`` without Lhotse: map-style over the manifest.

Each item's audio is a WAV/FLAC member of a ``recording.N.tar``; the manifest says where its
bytes lie (``at``, ``size``), so an item is one seek and one read. (Lhotse itself reads the
folder with ``CutSet.from_shar(in_dir=...)``.) The shards' sizes are checked against the
manifest when the dataset is made, each item's header (rate, mono, 16-bit, length) when it
is read.
"""

from __future__ import annotations

import io
from pathlib import Path

from torch.utils.data import Dataset

from loaders.formats import FormatReader
from loaders.sample import FormatError, audio_tensor, make_sample, read_pcm16


class LhotseSharDataset(FormatReader, Dataset):
    format_name = "lhotse_shar"

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.open_folder(folder, dtype)
        ends: dict[str, int] = {}
        for entry in self.entries:
            try:
                end = int(entry["at"]) + int(entry["size"])
                ends[entry["shard"]] = max(ends.get(entry["shard"], 0), end)
            except (KeyError, TypeError, ValueError):
                raise FormatError(
                    f"{self.folder / 'manifest.jsonl'}: {entry.get('key')!r} has no shard/at/size"
                ) from None
        for shard, end in ends.items():
            path = self.folder / shard
            size = path.stat().st_size if path.exists() else None
            if size is None or size < end:
                raise FormatError(f"{path}: {size} bytes, its items need {end} (missing or cut)")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        path = self.folder / entry["shard"]
        with open(path, "rb") as fh:
            fh.seek(entry["at"])
            data = fh.read(entry["size"])
        name = f"{path}:{entry['member']}"
        samples = read_pcm16(io.BytesIO(data), name, self.sample_rate, int(entry["num_samples"]))
        return make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))
