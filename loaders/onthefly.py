"""The baseline every format is compared with: decode and resample the original files
(mp3, ogg, flac...) every time, through the same code as ``prep convert``.

Optional random crops (seeded by ``seed``, the epoch and the index) and a RAM cache of
decoded audio, kept across epochs up to a byte budget, so epoch 2 decodes nothing:
``cache="process"`` keeps it in each process (with ``num_workers=0``, or persistent
workers); ``cache="shared"`` keeps it in shared memory (``/dev/shm``), which every
DataLoader worker of every epoch reads and fills.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from loaders.audio.dsp import load_mono, to_int16
from loaders.audio.errors import DecodeError
from loaders.audio.sniff import is_audio_name
from loaders.epoch import SharedEpoch
from loaders.sample import audio_tensor, check_dtype, make_sample
from manifests import iter_manifest, resolve_audio_path

CACHE_MODES = ("none", "process", "shared")


def _list_sources(src: Path) -> list[dict]:
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such folder or manifest")
    if src.is_file():
        return [
            {**e, "path": str(resolve_audio_path(src, e)), "key": e.get("key", e["audio_filepath"])}
            for e in iter_manifest(src)
        ]
    paths = sorted(p for p in src.rglob("*") if is_audio_name(p.name) and p.is_file())
    return [{"path": str(p), "key": p.relative_to(src).as_posix()} for p in paths]


class OnTheFlyDataset(SharedEpoch, Dataset):
    def __init__(
        self,
        src: str | Path,
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
        seed: int = 0,
        cache: str = "none",
        cache_bytes: int = 1 << 30,
        cache_dir: str | Path | None = None,
        dtype: str = "float32",
    ) -> None:
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, not {cache!r}")
        self.entries = _list_sources(Path(src))
        self.sample_rate = sample_rate
        self.crop = None if crop_seconds is None else int(round(crop_seconds * sample_rate))
        self.seed, self.epoch = seed, 0
        self.dtype = check_dtype(dtype)
        self.cache, self.cache_bytes = cache, cache_bytes
        self.decodes = 0  # files decoded by this process: what the cache saves
        self._memory: OrderedDict[int, np.ndarray] = OrderedDict()
        self._memory_bytes = 0
        self.cache_dir = None
        if cache == "shared":
            base = cache_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
            self.cache_dir = Path(tempfile.mkdtemp(prefix="audioprep-cache-", dir=base))

    def __len__(self) -> int:
        return len(self.entries)

    def _shared_path(self, index: int) -> Path:
        name = hashlib.sha1(self.entries[index]["path"].encode()).hexdigest()
        return self.cache_dir / f"{name}.npy"

    def _shared_used(self) -> int:
        return sum(p.stat().st_size for p in self.cache_dir.glob("*.npy"))

    def _decode(self, index: int) -> np.ndarray:
        self.decodes += 1
        path = self.entries[index]["path"]
        try:
            return to_int16(load_mono(path, self.sample_rate))
        except DecodeError as exc:  # its message says why, not which file
            raise DecodeError(f"{path}: {exc}") from None

    def samples(self, index: int) -> np.ndarray:
        """The whole file as int16 at ``sample_rate``, from the cache when it is there."""
        if self.cache == "process" and index in self._memory:
            self._memory.move_to_end(index)
            return self._memory[index]
        if self.cache == "shared":
            path = self._shared_path(index)
            if path.exists():
                return np.load(path)
        samples = self._decode(index)
        if self.cache == "process" and samples.nbytes <= self.cache_bytes:
            self._memory[index] = samples
            self._memory_bytes += samples.nbytes
            while self._memory_bytes > self.cache_bytes:  # least recently used goes first
                _, old = self._memory.popitem(last=False)
                self._memory_bytes -= old.nbytes
        elif self.cache == "shared" and self._shared_used() + samples.nbytes <= self.cache_bytes:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            with open(tmp, "wb") as fh:
                np.save(fh, samples)
            os.replace(tmp, path)
        return samples

    def __getitem__(self, index: int) -> dict:
        entry = dict(self.entries[index])
        samples = self.samples(index)
        if self.crop is not None and len(samples) > self.crop:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            start = int(rng.integers(0, len(samples) - self.crop + 1))
            samples = samples[start : start + self.crop]
        entry["num_samples"] = len(samples)
        return make_sample(entry, self.sample_rate, audio=audio_tensor(samples, self.dtype))

    def clear_cache(self) -> None:
        self._memory.clear()
        self._memory_bytes = 0
        if self.cache_dir is not None:
            for path in self.cache_dir.glob("*"):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the shared-memory cache (it outlives the workers, not the dataset)."""
        self.clear_cache()
        if self.cache_dir is not None and self.cache_dir.exists():
            self.cache_dir.rmdir()
