"""Reader for ``prep convert`` output: whole 16-bit WAV/FLAC files, or random crops.

A crop reads only its frames (soundfile seeks in WAV and FLAC), never the whole file.
Each file's header is checked against its manifest line (rate, mono, 16-bit, length).
Crops are drawn from a generator seeded by ``seed``, the epoch and the index, so the
same epoch gives the same crops in any worker; call :meth:`set_epoch` between epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from loaders.epoch import SharedEpoch
from loaders.sample import audio_tensor, check_dtype, make_sample, read_folder, read_pcm16


class ConvertedDataset(SharedEpoch, Dataset):
    def __init__(
        self,
        folder: str | Path,
        crop_seconds: float | None = None,
        seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.folder = Path(folder)
        _, self.entries = read_folder(self.folder)
        self.sample_rate = int(self.entries[0]["sample_rate"]) if self.entries else 16000
        self.crop = None if crop_seconds is None else int(round(crop_seconds * self.sample_rate))
        self.seed = seed
        self.epoch = 0
        self.dtype = check_dtype(dtype)

    def __len__(self) -> int:
        return len(self.entries)

    def crop_start(self, index: int) -> int:
        total = int(self.entries[index]["num_samples"])
        if self.crop is None or total <= self.crop:
            return 0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return int(rng.integers(0, total - self.crop + 1))

    def __getitem__(self, index: int) -> dict:
        entry = dict(self.entries[index])
        path = self.folder / entry["audio_filepath"]
        rate = int(entry.get("sample_rate", self.sample_rate))
        # An utterance of a longer file (a manifest line with offset/duration) is its span.
        file_frames = entry.get("file_num_samples", entry.get("num_samples"))
        first = round(entry["offset"] * rate) if "file_num_samples" in entry else 0
        if self.crop is None and "file_num_samples" not in entry:
            samples = read_pcm16(path, path, rate, file_frames)
        else:
            start = first + self.crop_start(index)
            length = int(entry["num_samples"]) if self.crop is None else self.crop
            count = min(length, int(entry["num_samples"]))
            samples = read_pcm16(path, path, rate, file_frames, start, count)
            entry["num_samples"] = len(samples)
            entry["key"] = f"{entry['audio_filepath']}@{start}"
        entry.setdefault("key", entry["audio_filepath"])
        return make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))
