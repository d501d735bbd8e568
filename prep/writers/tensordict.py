"""``tensordict``: the items as one TensorDict in tensordict's memory-mapped layout.

``data/`` holds tensordict's ``meta.json`` and one raw ``NAME.memmap`` file per tensor:
``audio`` int16 ``[N, T]``, ``lengths`` int64 ``[N]`` (samples before padding) and, when
the run computed mel, ``mel`` ``[N, n_mels, frames]`` in the mel dtype (with
``mel_min``/``mel_max`` float64 ``[N]`` for uint8). ``TensorDict.load_memmap`` opens it,
and it indexes like torchrl's ``LazyMemmapStorage`` (``td[rows]``); the manifest (``row``)
keeps keys and sources, as for ``memmap``.

tensordict lays the folder out (``memmap_like``: ``meta.json`` and files of the right
size, sparse); the rows then go in with plain writes, not through a map, so a full disk
fails a write (ENOSPC) instead of killing the process with SIGBUS. The folder is written
under a hidden name and renamed into place whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests import naming
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import fingerprint_files

DIRECTORY = "data"
META = "meta.json"


def _tensors(items: list, options) -> dict[str, tuple[str, list[int]]]:
    """``{name: (numpy dtype, shape)}`` of every tensor the folder holds, in write order."""
    n = len(items)
    tensors = {"audio": ("int16", [n, options.segment]), "lengths": ("int64", [n])}
    if options.wants_mel and items:
        tensors["mel"] = (options.mel_dtype, [n, *items[0].mel_shape])
        if options.mel_dtype == "uint8":
            tensors["mel_min"] = tensors["mel_max"] = ("float64", [n])
    return tensors


def _item_values(meta, rows, names) -> dict[str, np.ndarray]:
    """One item's row of each tensor."""
    values = {
        "audio": np.ascontiguousarray(rows.audio(meta), dtype="<i2"),
        "lengths": np.array(meta.num_samples, dtype="<i8"),
    }
    if "mel" in names:
        values["mel"] = rows.mel(meta)
    for name in ("mel_min", "mel_max"):
        if name in names:
            values[name] = np.array(meta.mel_fields[name], dtype="<f8")
    return values


def _lay_out(tmp: Path, n: int, tensors: dict) -> None:
    """tensordict's own ``meta.json`` and (sparse) files for ``tensors``, from a skeleton
    of broadcast zeros, so nothing of the data's size is allocated."""
    import torch
    from tensordict import TensorDict

    skeleton = {
        name: torch.zeros((), dtype=getattr(torch, dtype)).expand(*shape)
        for name, (dtype, shape) in tensors.items()
    }
    TensorDict(skeleton, batch_size=[n]).memmap_like(str(tmp))


class TensorDictWriter(FormatWriter):
    name = "tensordict"
    carries_mel = True
    needs_fixed_length = True

    def write_all(self, folder: Path, items: list, rows, options) -> WrittenFormat:
        folder = Path(folder)
        final = folder / DIRECTORY
        tmp, old = folder / f".{DIRECTORY}.partial", folder / f".{DIRECTORY}.old"
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in (tmp, old):  # a killed run's
            shutil.rmtree(leftover, ignore_errors=True)
        tensors = _tensors(items, options)
        try:
            with naming(final):
                _lay_out(tmp, len(items), tensors)
            with contextlib.ExitStack() as stack:
                files, named = {}, {name: final / f"{name}.memmap" for name in tensors}
                for name in tensors:
                    stack.enter_context(naming(named[name]))  # its closing flush
                    files[name] = stack.enter_context(open(tmp / f"{name}.memmap", "r+b"))
                for meta in items:
                    for name, value in _item_values(meta, rows, tensors).items():
                        with naming(named[name]):  # errors name the file, not its temporary
                            files[name].write(value.tobytes())
            if final.exists():  # an interrupted run of the same settings wrote it
                os.rename(final, old)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        names = sorted(f"{DIRECTORY}/{p.name}" for p in final.iterdir())
        return WrittenFormat(
            locations=[{"row": i} for i in range(len(items))],
            files=fingerprint_files(folder, names),
            fields={
                "directory": DIRECTORY,
                "tensors": {k: {"dtype": d, "shape": s} for k, (d, s) in tensors.items()},
            },
        )

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """``meta.json`` against format.json's tensors (N the manifest's items), and the
        manifest's rows 0..N-1 each once."""
        directory = fmt.get("directory", DIRECTORY)
        yield from meta_problems(folder / directory, f"{label}/{directory}", fmt, len(entries))
        rows = Counter(e.get("row") for e in entries)
        if sorted(rows) != list(range(len(entries))):
            yield f"{label}/manifest.jsonl: rows are not 0..{len(entries) - 1}, each once"


def meta_problems(directory: Path, label: str, fmt: dict, n: int) -> Iterator[str]:
    """tensordict's ``meta.json`` disagreeing with the tensors format.json promises."""
    try:
        meta = json.loads((directory / META).read_bytes())
    except FileNotFoundError:
        return  # reported as missing by the files check
    except (OSError, ValueError) as exc:
        yield f"{label}/{META}: unreadable ({exc})"
        return
    promised = fmt.get("tensors", {})
    if "audio" not in promised:
        yield f"{label}: format.json promises no 'audio' tensor"
    for name, want in promised.items():
        found = meta.get(name) if isinstance(meta, dict) else None
        if not isinstance(found, dict):
            yield f"{label}/{META}: no tensor {name!r}"
            continue
        have = (found.get("dtype"), found.get("shape"))
        expected = (f"torch.{want['dtype']}", [n, *want["shape"][1:]])
        if have != expected or want["shape"][0] != n:
            yield (
                f"{label}/{META}: {name!r} is {have[0]} {have[1]}, format.json and the "
                f"manifest promise {expected[0]} {expected[1]}"
            )
