"""``hdf5``: one ``data.h5`` readable with plain h5py.

Fixed-length items: ``audio`` int16 ``[N, T]`` chunked one row per chunk, ``mel``
``[N, n_mels, frames]``. Variable-length items: ``audio`` is one 1-D int16 array with
``offsets`` ``[N + 1]`` (item i is ``audio[offsets[i]:offsets[i+1]]``), and ``mel`` is
``[n_mels, total_frames]`` with ``mel_offsets``. ``keys``, ``sources``, ``num_samples`` and
``offset_seconds`` per item; sample rate and mel settings as attributes. No timestamps are
stored, so the same input gives the same bytes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from manifests import atomic_path, naming
from prep.errors import UsageError
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import fingerprint_files

if TYPE_CHECKING:
    import h5py

FILENAME = "data.h5"
HDF5_COMPRESSIONS = ("none", "lzf", "gzip")


def _dataset(f: h5py.File, name: str, data=None, compression: str = "none", **kwargs):
    codec = {"none": None, "lzf": "lzf", "gzip": "gzip"}[compression]
    return f.create_dataset(name, data=data, compression=codec, track_times=False, **kwargs)


def _check_room(path: Path, items: list, options) -> None:
    """Refuse, before HDF5 starts, a file the disk cannot hold: the HDF5 library does not
    survive a failed write (it crashes the process when the file is closed or at exit).
    Uncompressed size plus overhead: an upper bound when compressed."""
    need = sum(2 * m.stored_samples + 256 for m in items) + (1 << 18)
    if options.wants_mel and items:
        need += len(items) * int(np.prod(items[0].mel_shape)) * np.dtype(options.mel_dtype).itemsize
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)} ({need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free)",
            str(path),
        )


class HDF5Writer(FormatWriter):
    name = "hdf5"
    carries_mel = True

    def params(self, options) -> dict:
        return {"compression": options.hdf5_compression}

    def validate(self, options) -> None:
        if options.hdf5_compression not in HDF5_COMPRESSIONS:
            raise UsageError(f"--hdf5-compression must be one of {', '.join(HDF5_COMPRESSIONS)}")

    def write_all(self, folder: Path, items: list, rows, options) -> WrittenFormat:
        _write_file(folder, items, rows, options)
        return WrittenFormat(
            locations=[{"row": i} for i in range(len(items))],
            files=fingerprint_files(folder, [FILENAME]),
            fields={"file": FILENAME},
        )

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """The datasets' shapes for the items the manifest lists, and mel when promised."""
        import h5py

        name = f"{label}/{fmt.get('file', FILENAME)}"
        n = len(entries)
        try:
            with h5py.File(folder / fmt.get("file", FILENAME), "r") as f:
                shapes = {key: f[key].shape for key in f}
        except FileNotFoundError:
            return
        except OSError as exc:
            yield f"{name}: not a readable HDF5 file ({exc})"
            return
        expected = {"keys": (n,), "sources": (n,), "num_samples": (n,)}
        if fmt.get("segment_samples") and fmt.get("last") in ("pad", "drop"):
            expected["audio"] = (n, fmt["segment_samples"])
        else:
            expected["offsets"] = (n + 1,)
        for key, shape in expected.items():
            if shapes.get(key) != shape:
                yield f"{name}: dataset {key!r} has shape {shapes.get(key)}, expected {shape}"
        if "mel" in fmt and "mel" not in shapes:
            yield f"{name}: no 'mel' dataset although the set was made with mel"


def _write_file(folder: Path, items: list, rows, options) -> None:
    import h5py

    n = len(items)
    comp = options.hdf5_compression
    folder.mkdir(parents=True, exist_ok=True)
    _check_room(folder / FILENAME, items, options)
    with (
        naming(folder / FILENAME),
        atomic_path(folder / FILENAME) as tmp,
        h5py.File(tmp, "w", track_order=False) as f,
    ):
        if options.fixed_length:
            audio = _dataset(
                f,
                "audio",
                shape=(n, options.segment),
                dtype=np.int16,
                chunks=(1, options.segment),
                compression=comp,
            )
            for i, meta in enumerate(items):
                audio[i] = rows.audio(meta)
        else:
            offsets = np.zeros(n + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([m.stored_samples for m in items])
            audio = _dataset(
                f,
                "audio",
                shape=(int(offsets[-1]),),
                dtype=np.int16,
                chunks=True if n else None,
                compression=comp,
            )
            for i, meta in enumerate(items):
                audio[offsets[i] : offsets[i + 1]] = rows.audio(meta)
            _dataset(f, "offsets", data=offsets)
        if options.wants_mel and n:
            _write_mel(f, items, rows, options)
        _dataset(f, "keys", data=[m.key for m in items], dtype=h5py.string_dtype())
        _dataset(f, "sources", data=[m.source for m in items], dtype=h5py.string_dtype())
        _dataset(f, "num_samples", data=np.array([m.num_samples for m in items], dtype=np.int64))
        _dataset(
            f,
            "offset_seconds",
            data=np.array([m.start / m.sample_rate for m in items], dtype=np.float64),
        )
        f.attrs["sample_rate"] = options.sample_rate
        f.attrs["segment_samples"] = options.segment or 0
        f.attrs["last"] = options.last
        if options.wants_mel:
            f.attrs["mel"] = json.dumps(options.feature_config, sort_keys=True)
            f.attrs["mel_dtype"] = options.mel_dtype


def _write_mel(f: h5py.File, items: list, rows, options) -> None:
    comp = options.hdf5_compression
    dtype = np.dtype(options.mel_dtype)
    n_mels = items[0].mel_shape[0]
    if options.fixed_length:
        frames = items[0].mel_shape[1]
        mel = _dataset(
            f,
            "mel",
            shape=(len(items), n_mels, frames),
            dtype=dtype,
            chunks=(1, n_mels, frames),
            compression=comp,
        )
        for i, meta in enumerate(items):
            mel[i] = rows.mel(meta)
    else:
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([m.mel_shape[1] for m in items])
        mel = _dataset(
            f, "mel", shape=(n_mels, int(offsets[-1])), dtype=dtype, chunks=True, compression=comp
        )
        for i, meta in enumerate(items):
            mel[:, offsets[i] : offsets[i + 1]] = rows.mel(meta)
        _dataset(f, "mel_offsets", data=offsets)
    if options.mel_dtype == "uint8":
        _dataset(f, "mel_min", data=np.array([m.mel_fields["mel_min"] for m in items]))
        _dataset(f, "mel_max", data=np.array([m.mel_fields["mel_max"] for m in items]))
