"""Reader for ``prep shard --format segments``: one 16-bit WAV per item."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from loaders.formats import FormatReader
from loaders.sample import audio_tensor, make_sample, read_pcm16, stored_samples


class SegmentsDataset(FormatReader, Dataset):
    """Map-style: item i is the WAV the manifest's line i names. Each WAV's header is
    checked (rate, mono, 16-bit, length) when it is read."""

    format_name = "segments"

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.open_folder(folder, dtype)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        path = self.folder / entry["audio_filepath"]
        frames = stored_samples(self.format, entry)
        samples = read_pcm16(path, path, self.sample_rate, frames)
        return make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))
