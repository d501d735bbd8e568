"""Log-mel features as a torch module: the same code makes precomputed and on-the-fly mel.

``LogMel(**fmt["mel"])`` rebuilds exactly the module that wrote a ``prep shard`` folder;
:class:`Fbank` is its Kaldi-compatible sibling (``--features fbank``), and
``feature_module(fmt["mel"])`` picks whichever of the two a folder holds.
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
from loaders.mel_storage import (
    FBANK_WINDOWS,
    MEL_DTYPES,
    feature_frames,
    from_storage,
    to_storage,
)
from loaders.sample import FormatError, make_sample, stored_samples

__all__ = [
    "LOG_SCALES",
    "MEL_DTYPES",
    "Fbank",
    "LogMel",
    "MelDataset",
    "feature_module",
    "from_storage",
    "to_storage",
]

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


class Fbank(torch.nn.Module):
    """Kaldi-compatible log mel filterbanks (``torchaudio.compliance.kaldi.fbank``) as
    ``[n_mels, frames]``, laid out like :class:`LogMel` so the same readers and collate
    take them. Computed on int16-scale samples, as Kaldi reads a WAV; ``f_max`` 0 is
    Nyquist (below 0: that far under it). With ``dither`` it draws from torch's global
    generator, as torchaudio does: seed it for repeatable features."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_length: int = 400,
        hop_length: int = 160,
        f_min: float = 20.0,
        f_max: float = 0.0,
        dither: float = 0.0,
        preemphasis: float = 0.97,
        window: str = "povey",
        snip_edges: bool = True,
        features: str = "fbank",
    ) -> None:
        super().__init__()
        if window not in FBANK_WINDOWS:
            raise ValueError(f"window must be one of {FBANK_WINDOWS}, not {window!r}")
        if features != "fbank":
            raise ValueError(f"Fbank computes fbank features, not {features!r}")
        self.config = {
            "features": "fbank",
            "sample_rate": sample_rate,
            "n_mels": n_mels,
            "win_length": win_length,
            "hop_length": hop_length,
            "f_min": f_min,
            "f_max": f_max,
            "dither": dither,
            "preemphasis": preemphasis,
            "window": window,
            "snip_edges": snip_edges,
        }
        self._kaldi = {
            "sample_frequency": float(sample_rate),
            "frame_length": _ms(win_length, sample_rate),
            "frame_shift": _ms(hop_length, sample_rate),
            "num_mel_bins": n_mels,
            "low_freq": f_min,
            "high_freq": f_max,
            "dither": dither,
            "preemphasis_coefficient": preemphasis,
            "window_type": window,
            "snip_edges": snip_edges,
            "energy_floor": 0.0,  # Kaldi's default (only used with use_energy, which is off)
        }

    def num_frames(self, num_samples: int) -> int:
        return feature_frames(self.config, num_samples)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[T] or [B, T] audio (float32 in [-1, 1] or int16) to [n_mels, frames] or
        [B, n_mels, frames] log filterbank energies."""
        from torchaudio.compliance import kaldi

        scaled = audio.to(torch.float32)
        if audio.dtype != torch.int16:
            scaled = scaled * 32768.0  # exact: the int16 values again
        rows = scaled.reshape(-1, scaled.shape[-1])
        feats = [kaldi.fbank(row.unsqueeze(0), **self._kaldi).T for row in rows]
        stacked = torch.stack(feats) if feats else rows.new_zeros((0, self.config["n_mels"], 0))
        return stacked[0] if audio.dim() == 1 else stacked


def _ms(samples: int, sample_rate: int) -> float:
    """``samples`` as milliseconds that torchaudio turns back into exactly ``samples``
    (it truncates ``rate * ms * 0.001``)."""
    ms = samples * 1000.0 / sample_rate
    while int(sample_rate * ms * 0.001) < samples:
        ms = float(np.nextafter(ms, np.inf))
    return ms


def feature_module(config: dict) -> torch.nn.Module:
    """The module a format.json ``mel`` config describes: :class:`Fbank` for
    ``"features": "fbank"``, else :class:`LogMel`."""
    if config.get("features", "mel") == "fbank":
        return Fbank(**config)
    return LogMel(**config)


class MelDataset(FormatReader, torch.utils.data.Dataset):
    """Reader for ``prep shard --format mel``: one stored log-mel ``.npy`` per item.

    uint8 items are dequantised with the range their manifest line keeps. Each ``.npy``
    is checked against format.json (dtype, ``[n_mels, frames]``) as it is read.
    """

    format_name = "mel"

    def __init__(self, folder: str | Path) -> None:
        self.open_folder(folder)
        config = self.format.get("mel")
        if not isinstance(config, dict) or config.get("sample_rate") != self.sample_rate:
            raise FormatError(
                f"{self.folder / 'format.json'}: mel settings {config!r} are not for "
                f"{self.sample_rate} Hz audio"
            )
        self.mel_dtype = np.dtype(self.format.get("mel_dtype", "float32"))
        self.n_mels, self.config = int(config["n_mels"]), config

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        path = self.folder / entry["mel_filepath"]
        try:
            stored = np.load(path)
        except (ValueError, EOFError) as exc:
            raise FormatError(f"{path}: not a readable .npy file ({exc})") from None
        frames = feature_frames(self.config, stored_samples(self.format, entry))
        if stored.dtype != self.mel_dtype or stored.shape != (self.n_mels, frames):
            raise FormatError(
                f"{path}: {stored.dtype} {stored.shape}, format.json promises "
                f"{self.mel_dtype} {(self.n_mels, frames)}"
            )
        mel = torch.from_numpy(from_storage(stored, entry))
        return make_sample(entry, self.sample_rate, mel=mel)
