"""Log-mel features as a torch module: the same code makes precomputed and on-the-fly mel.

``LogMel(**fmt["mel"])`` rebuilds exactly the module that wrote a ``prep shard`` folder.
It runs on whatever device its input is on, takes float32 in [-1, 1] or raw int16 (the
fast path: int16 crosses the process boundary, the float conversion happens on the GPU).
No per-batch normalisation, so one item gives the same features alone or in a batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio

from loaders.formats import FormatReader
from loaders.mel_storage import MEL_DTYPES, from_storage, to_storage
from loaders.sample import FormatError, make_sample, stored_samples

__all__ = ["LOG_SCALES", "MEL_DTYPES", "LogMel", "MelDataset", "from_storage", "to_storage"]

LOG_SCALES = ("natural", "db")
_FLOOR = 1e-10


class LogMel(torch.nn.Module):
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
        log: str = "natural",
    ) -> None:
        super().__init__()
        if log not in LOG_SCALES:
            raise ValueError(f"log must be one of {LOG_SCALES}, not {log!r}")
        self.config = {
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "f_min": f_min,
            "f_max": f_max,
            "log": log,
        }
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
            center=True,
        )

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.config["hop_length"] + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[T] or [B, T] audio to [n_mels, frames] or [B, n_mels, frames] log-mel."""
        if audio.dtype == torch.int16:
            audio = audio.to(torch.float32) / 32768.0
        power = self.mel(audio).clamp_min(_FLOOR)
        if self.config["log"] == "natural":
            return power.log()
        return 10.0 * power.log10()


class MelDataset(FormatReader, torch.utils.data.Dataset):
    """Reader for ``prep shard --format mel``: one stored log-mel ``.npy`` per item.

    uint8 items are dequantised with the range their manifest line keeps. Each ``.npy``
    is checked against format.json (dtype, ``[n_mels, frames]``) as it is read.
    """

    format_name = "mel"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.format, self.entries = self.read_folder(self.folder)
        self.sample_rate = int(self.format["sample_rate"])
        config = self.format.get("mel")
        if not isinstance(config, dict) or config.get("sample_rate") != self.sample_rate:
            raise FormatError(
                f"{self.folder / 'format.json'}: mel settings {config!r} are not for "
                f"{self.sample_rate} Hz audio"
            )
        self.mel_dtype = np.dtype(self.format.get("mel_dtype", "float32"))
        self.n_mels, self.hop = int(config["n_mels"]), int(config["hop_length"])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        path = self.folder / entry["mel_filepath"]
        try:
            stored = np.load(path)
        except (ValueError, EOFError) as exc:
            raise FormatError(f"{path}: not a readable .npy file ({exc})") from None
        frames = stored_samples(self.format, entry) // self.hop + 1
        if stored.dtype != self.mel_dtype or stored.shape != (self.n_mels, frames):
            raise FormatError(
                f"{path}: {stored.dtype} {stored.shape}, format.json promises "
                f"{self.mel_dtype} {(self.n_mels, frames)}"
            )
        mel = torch.from_numpy(from_storage(stored, entry))
        return make_sample(entry, self.sample_rate, mel=mel)
