"""``memmap``: one int16 ``[N, T]`` array in NumPy's own format, C order.

``np.load(path, mmap_mode="r")`` and NVIDIA DALI's numpy reader read it directly; the
folder's ``manifest.jsonl`` is the index (``row`` per item). It is written with plain
writes, not through a map: a full disk then fails a write (ENOSPC) instead of killing
the process with SIGBUS on a page the file system cannot back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests import atomic_path, naming
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import fingerprint_files

FILENAME = "audio.npy"


class MemmapWriter(FormatWriter):
    name = "memmap"
    needs_fixed_length = True

    def write_all(self, folder: Path, items: list, rows, options) -> WrittenFormat:
        shape = (len(items), options.segment)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<i2")), "fortran_order": False}
        with (
            naming(folder / FILENAME),
            atomic_path(folder / FILENAME) as tmp,
            open(tmp, "wb") as fh,
        ):
            np.lib.format.write_array_header_1_0(fh, {**header, "shape": shape})
            for meta in items:
                fh.write(np.ascontiguousarray(rows.audio(meta), dtype="<i2").tobytes())
        return WrittenFormat(
            locations=[{"row": i} for i in range(len(items))],
            files=fingerprint_files(folder, [FILENAME]),
            fields={"file": FILENAME, "shape": list(shape)},
        )

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """The array's dtype and shape, and the manifest's rows 0..N-1 each once."""
        name = f"{label}/{fmt.get('file', FILENAME)}"
        try:
            array = np.load(folder / fmt.get("file", FILENAME), mmap_mode="r")
        except FileNotFoundError:
            return
        except (ValueError, OSError) as exc:
            yield f"{name}: unreadable ({exc})"
            return
        expected = (len(entries), fmt.get("segment_samples"))
        if array.shape != expected or array.dtype != np.int16:
            yield f"{name}: {array.dtype} {array.shape}, expected int16 {expected}"
        rows = Counter(e.get("row") for e in entries)
        if sorted(rows) != list(range(len(entries))):
            yield f"{label}/manifest.jsonl: rows are not 0..{len(entries) - 1}, each once"
