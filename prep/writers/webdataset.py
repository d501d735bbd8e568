"""``webdataset``: tar shards ``shard-000000.tar``, ... read by the webdataset library.

Members per item: ``KEY.wav`` (or ``KEY.flac``), ``KEY.json`` (its metadata), ``KEY.txt``
when the set has transcripts (empty for an item without one: Hugging Face ``datasets``
wants every sample to have the same members), ``KEY.mel.npy`` with mel. Items are
shuffled across shards with the seed, so a shard is not one source; every shard holds
the same number of items but the last (``shard_items`` in format.json lists each shard's
count, which the reader and ``prep verify`` hold the shards to). Tar headers carry a
fixed mtime and owner, so shards are byte-for-byte repeatable. Each shard gets an index,
``shard-000000.idx`` (DALI's ``wds2idx`` format, v1.2: each item's members with the offset
and size of their data), which NVIDIA DALI's ``fn.readers.webdataset`` needs; it is made
while the shard is written and listed in ``files``, so ``prep verify`` checks it too.
"""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prep.errors import UsageError
from prep.pcm import encode_pcm16
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import open_output

DEFAULT_SHARD_BYTES = 256 << 20
CODECS = ("wav", "flac")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def index_name(shard: str) -> str:
    """The DALI index of ``shard`` (what ``wds2idx`` names it): ``shard-000000.idx``."""
    return shard.removesuffix(".tar") + ".idx"


INDEX_VERSION = "v1.2"  # DALI's wds2idx index format


class _MemberOffsets:
    """Records where each member's data lands as a :class:`webdataset.TarWriter` writes,
    for the shard's DALI index: the tar stream's offset after a member, less its padded
    size, is where its data starts (whatever header blocks came before it)."""

    def __init__(self, tarstream: tarfile.TarFile) -> None:
        self.tarstream = tarstream
        self._addfile = tarstream.addfile
        tarstream.addfile = self._record
        self.members: list[tuple[str, int, int]] = []
        self.lines: list[str] = []

    def _record(self, tarinfo: tarfile.TarInfo, fileobj=None) -> None:
        self._addfile(tarinfo, fileobj)
        padded = -(-tarinfo.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self.members.append((tarinfo.name, self.tarstream.offset - padded, tarinfo.size))

    def end_item(self, key: str) -> None:
        """Close the index line of the item just written: ``ext offset size name`` each."""
        self.lines.append(
            " ".join(
                f"{name[len(key) + 1 :]} {offset} {size} {name}"
                for name, offset, size in self.members
            )
        )
        self.members = []

    def index(self) -> bytes:
        """The index file: a header line, then one line per item."""
        return "".join(
            f"{line}\n" for line in [f"{INDEX_VERSION} {len(self.lines)}", *self.lines]
        ).encode()


def items_per_shard(items: list, options) -> int:
    """From --shard-size, or --shard-bytes over the average item (the smaller of the two)."""
    sizes = []
    if options.shard_size:
        sizes.append(options.shard_size)
    if options.shard_bytes or not options.shard_size:
        budget = options.shard_bytes or DEFAULT_SHARD_BYTES
        mean = np.mean([2 * m.stored_samples + 1024 for m in items]) if items else 1
        if options.wants_mel and items:
            mean += np.prod(items[0].mel_shape) * np.dtype(options.mel_dtype).itemsize
        sizes.append(max(1, int(budget // mean)))
    return min(sizes)


def _sample(meta, rows, options, with_text: bool) -> dict:
    metadata = {
        "key": meta.key,
        "source": meta.source,
        "offset": round(meta.start / meta.sample_rate, 6),
        "duration": round(meta.num_samples / meta.sample_rate, 6),
        "num_samples": meta.num_samples,
        "sample_rate": meta.sample_rate,
        **meta.fields,
        **meta.mel_fields,
    }
    codec = options.codec
    sample = {
        "__key__": meta.key,
        codec: encode_pcm16(rows.audio(meta), meta.sample_rate, codec.upper()),
        "json": json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8"),
    }
    if with_text:  # every sample gets one, so all share the same members
        sample["txt"] = str(meta.fields.get("text", "")).encode("utf-8")
    if options.wants_mel:
        buffer = io.BytesIO()
        np.save(buffer, rows.mel(meta))
        sample["mel.npy"] = buffer.getvalue()
    return sample


class WebDatasetWriter(FormatWriter):
    name = "webdataset"
    carries_mel = True
    streams_to_object_storage = True

    def params(self, options) -> dict:
        return {
            "shuffle_seed": options.shuffle_seed,
            "shard_size": options.shard_size,
            "shard_bytes": options.shard_bytes,
            "codec": options.codec,
        }

    def validate(self, options) -> None:
        if options.codec not in CODECS:
            raise UsageError(f"--codec must be one of {', '.join(CODECS)}")
        for name in ("shard_size", "shard_bytes"):
            value = getattr(options, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        if options.shuffle_seed < 0:
            raise UsageError("--shuffle-seed must be 0 or more")

    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        from webdataset import TarWriter  # the webdataset package imports torch: only when used

        order = np.random.default_rng(options.shuffle_seed).permutation(len(items))
        per_shard = min(items_per_shard(items, options), max(1, len(items)))  # a shard's items
        num_shards = math.ceil(len(items) / per_shard)
        with_text = any("text" in m.fields for m in items)
        locations: list[dict] = [{} for _ in items]
        files: dict[str, dict] = {}
        for s in range(num_shards):
            name = shard_name(s)
            with open_output(folder, name, files) as fh:
                writer = TarWriter(fh, user="audioprep", group="audioprep", mtime=0, encoder=False)
                offsets = _MemberOffsets(writer.tarstream)
                for i in order[s * per_shard : (s + 1) * per_shard]:
                    meta = items[i]
                    writer.write(_sample(meta, rows, options, with_text))
                    offsets.end_item(meta.key)
                    locations[i] = {"shard": name, "member": f"{meta.key}.{options.codec}"}
                writer.close()
            with open_output(folder, index_name(name), files) as fh:
                fh.write(offsets.index())
        last = len(items) - per_shard * (num_shards - 1) if num_shards else 0
        fields = {
            "num_shards": num_shards,
            "samples_per_shard": per_shard,
            "last_shard_samples": last,
            "shard_items": [min(per_shard, len(items) - s * per_shard) for s in range(num_shards)],
            "shards": [shard_name(s) for s in range(num_shards)],
        }
        summary = _summary(num_shards, per_shard, last, len(items))
        return WrittenFormat(locations, files, fields, summary)

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each shard a readable tar holding the items format.json and the manifest list."""
        wanted: dict[str, set[str]] = {}
        for entry in entries:
            wanted.setdefault(entry["shard"], set()).add(entry["member"])
        shards = fmt.get("shards", [])
        counts = _shard_counts(fmt)
        if counts is not None and (len(counts) != len(shards) or sum(counts) != len(entries)):
            yield f"{label}/format.json: shard item counts {counts} do not add up to its shards"
            counts = None
        for index, shard in enumerate(shards):
            name = f"{label}/{shard}"
            try:
                with tarfile.open(folder / shard) as tar:
                    members = {m.name for m in tar.getmembers()}
            except FileNotFoundError:
                continue  # reported by the file check
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield f"{name}: not a readable tar ({exc})"
                continue
            keys = {m.group(1) for m in map(_MEMBER.match, members) if m}
            listed = len(wanted.get(shard, ()))
            if counts is not None and len(keys) != counts[index]:
                yield f"{name}: {len(keys)} items, format.json says {counts[index]}"
            elif len(keys) != listed:
                yield f"{name}: {len(keys)} items, the manifest lists {listed}"
            missing = wanted.get(shard, set()) - members
            if missing:
                yield f"{name}: {len(missing)} members missing, e.g. {sorted(missing)[0]}"
        unknown = set(wanted) - set(fmt.get("shards", []))
        for shard in sorted(unknown):
            yield f"{label}: the manifest names {shard}, which format.json does not list"


_MEMBER = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # KEY.ext, as webdataset groups them


def _shard_counts(fmt: dict) -> list | None:
    """Items per shard as format.json records them (``shard_items``; derived in one
    written before that field)."""
    shards = fmt.get("shards", [])
    if "shard_items" in fmt:
        return fmt["shard_items"]
    if shards and "samples_per_shard" in fmt:
        return [fmt["samples_per_shard"]] * (len(shards) - 1) + [fmt.get("last_shard_samples")]
    return None


def _summary(num_shards: int, per_shard: int, last: int, num_items: int) -> str:
    """What was written: shards, the items in each (the last's when it differs), items."""
    if num_shards == 0:
        return "no shards (no items)"
    if num_shards == 1:
        return f"1 shard of {num_items} item{'s' if num_items != 1 else ''}"
    sizes = f"{per_shard} items" + (f" (last {last})" if last != per_shard else "")
    return f"{num_shards} shards of {sizes}, {num_items} items in all"
