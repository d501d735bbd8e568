"""Reader for ``prep shard --format segments``: one 16-bit WAV per item."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from torch.utils.data import Dataset

from loaders.sample import audio_tensor, check_dtype, make_sample, read_folder


class SegmentsDataset(Dataset):
    """Map-style: item i is the WAV the manifest's line i names."""

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.folder = Path(folder)
        self.format, self.entries = read_folder(self.folder)
        self.sample_rate = int(self.format["sample_rate"])
        self.dtype = check_dtype(dtype)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        samples, _ = sf.read(self.folder / entry["audio_filepath"], dtype="int16")
        return make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))
