"""Reader for ``prep shard --format kaldi``: map-style over the manifest, each item a span of
a WAV that ``wav.scp`` names (one written under ``wav/``, or the input WAV it points into).

Each item's header (rate, mono, 16-bit) is checked when it is read, and a written WAV's
length too; a span past the end of its file is an error naming the file, not a short item.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from loaders.formats import FormatReader
from loaders.sample import FormatError, audio_tensor, make_sample, read_pcm16


class KaldiDataset(FormatReader, Dataset):
    format_name = "kaldi"

    def __init__(self, folder: str | Path, dtype: str = "float32") -> None:
        self.open_folder(folder, dtype)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        path = self.folder / entry["wav"]  # an absolute path (a linked WAV) stays as it is
        count = int(entry["num_samples"])
        frames = count if "sha256" in entry else None  # a written WAV is the item
        samples = read_pcm16(path, path, self.sample_rate, frames, int(entry["start"]), count)
        if len(samples) != count:
            raise FormatError(
                f"{path}: {entry['start'] + len(samples)} samples, the item "
                f"{entry.get('key')!r} ends at {entry['start'] + count}"
            )
        sample = make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))
        return sample
