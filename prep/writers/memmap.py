"""``memmap``: one int16 ``[N, T]`` array in NumPy's own format, C order.

``np.load(path, mmap_mode="r")`` and NVIDIA DALI's numpy reader read it directly; the
folder's ``manifest.jsonl`` is the index (``row`` per item).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests import atomic_path

FILENAME = "audio.npy"
_ROWS_PER_WRITE = 256


def write_all(folder: Path, items: list, rows, options) -> tuple[list[dict], dict]:
    with atomic_path(folder / FILENAME) as tmp:
        array = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.int16, shape=(len(items), options.segment)
        )
        for i, meta in enumerate(items):
            array[i] = rows.audio(meta)
        array.flush()
        del array
    shape = [len(items), options.segment]
    return [{"row": i} for i in range(len(items))], {"file": FILENAME, "shape": shape}
