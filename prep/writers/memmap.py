"""``memmap``: one int16 ``[N, T]`` array in NumPy's own format, C order.

``np.load(path, mmap_mode="r")`` and NVIDIA DALI's numpy reader read it directly; the
folder's ``manifest.jsonl`` is the index (``row`` per item). It is written with plain
writes, not through a map: a full disk then fails a write (ENOSPC) instead of killing
the process with SIGBUS on a page the file system cannot back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests import atomic_path, naming

FILENAME = "audio.npy"


def write_all(folder: Path, items: list, rows, options) -> tuple[list[dict], dict]:
    shape = (len(items), options.segment)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<i2")), "fortran_order": False}
    with naming(folder / FILENAME), atomic_path(folder / FILENAME) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {**header, "shape": shape})
        for meta in items:
            fh.write(np.ascontiguousarray(rows.audio(meta), dtype="<i2").tobytes())
    return [{"row": i} for i in range(len(items))], {"file": FILENAME, "shape": list(shape)}
