"""``lhotse_shar``: Lhotse's Shar layout, read by ``lhotse.CutSet.from_shar(in_dir=...)``.

In its ``shar/`` folder, per shard N: ``cuts.N.jsonl.gz`` (one ``MonoCut`` per item: one
supervision with ``text``, ``speaker`` and ``language`` when known; where it came from in
``custom``) and
``recording.N.tar`` (``KEY.wav`` or ``KEY.flac``, then ``KEY.json``, the recording
placeholder), named and laid out as ``lhotse.shar.SharWriter`` writes them, but written here
from the single decode pass. An item holds its real samples only (no padding: Lhotse pads
when it collates). Items are shuffled across shards with the seed, as in ``webdataset``;
gzip and tar headers carry fixed times, so shards are byte-for-byte repeatable. The
manifest records where each item's audio lies in its tar (``at``, ``size``), which the
reader in :mod:`loaders.lhotse_shar` reads directly.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prep.pcm import encode_pcm16
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import open_output
from prep.writers.webdataset import WebDatasetWriter, _summary, items_per_shard

SUPERVISION_FIELDS = ("text", "language", "speaker")  # Lhotse's order in a supervision


SHAR_DIR = "shar"
"""The Shar files' own folder: ``CutSet.from_shar(in_dir=...)`` takes every file in the
folder it is given for a field, so the manifest and format.json stay outside it."""


def cuts_name(index: int) -> str:
    return f"{SHAR_DIR}/cuts.{index:06d}.jsonl.gz"


def recording_name(index: int) -> str:
    return f"{SHAR_DIR}/recording.{index:06d}.tar"


def _recording(meta) -> dict:
    """The recording placeholder Lhotse's Shar writer puts in the cut and the tar."""
    return {
        "id": meta.key,
        "sources": [{"type": "shar", "channels": [0], "source": ""}],
        "sampling_rate": meta.sample_rate,
        "num_samples": meta.num_samples,
        "duration": meta.num_samples / meta.sample_rate,
        "channel_ids": [0],
    }


def _cut(meta, recording: dict) -> dict:
    duration = meta.num_samples / meta.sample_rate
    supervision = {
        "id": meta.key,
        "recording_id": meta.key,
        "start": 0,
        "duration": duration,
        "channel": 0,
    }
    supervision.update({k: meta.fields[k] for k in SUPERVISION_FIELDS if k in meta.fields})
    custom = {"source": meta.source, "offset": round(meta.start / meta.sample_rate, 6)}
    return {
        "id": meta.key,
        "start": 0,
        "duration": duration,
        "channel": 0,
        "supervisions": [supervision],
        "recording": recording,
        "custom": custom,
        "type": "MonoCut",
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Add a member (mtime 0, root, 0644: Lhotse's headers); where its data starts."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return tar.offset - math.ceil(len(data) / tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class LhotseSharWriter(FormatWriter):
    name = "lhotse_shar"

    def params(self, options) -> dict:
        return WebDatasetWriter().params(options)  # the same shard and codec settings

    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        order = np.random.default_rng(options.shuffle_seed).permutation(len(items))
        per_shard = min(items_per_shard(items, options), max(1, len(items)))
        num_shards = math.ceil(len(items) / per_shard)
        codec = options.codec
        locations: list[dict] = [{} for _ in items]
        files: dict[str, dict] = {}
        (Path(folder) / SHAR_DIR).mkdir(parents=True, exist_ok=True)
        for s in range(num_shards):
            tar_name, cuts = recording_name(s), []
            with (
                open_output(folder, tar_name, files) as fh,
                tarfile.open(fileobj=fh, mode="w|") as tar,
            ):
                for i in order[s * per_shard : (s + 1) * per_shard]:
                    meta = items[i]
                    samples = rows.audio(meta)[: meta.num_samples]  # not the padding
                    audio = encode_pcm16(samples, meta.sample_rate, codec.upper())
                    member = f"{meta.key}.{codec}"
                    at = _add(tar, member, audio)
                    recording = _recording(meta)
                    _add(tar, f"{meta.key}.json", (json.dumps(recording) + "\n").encode())
                    cuts.append(_cut(meta, recording))
                    locations[i] = {"shard": tar_name, "member": member, "at": at,
                                    "size": len(audio)}  # fmt: skip
            with (
                open_output(folder, cuts_name(s), files) as fh,
                gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz,
            ):
                gz.write("".join(json.dumps(cut) + "\n" for cut in cuts).encode("utf-8"))
        last = len(items) - per_shard * (num_shards - 1) if num_shards else 0
        fields = {
            "shar_dir": SHAR_DIR,
            "num_shards": num_shards,
            "shard_items": [min(per_shard, len(items) - s * per_shard) for s in range(num_shards)],
            "shards": [recording_name(s) for s in range(num_shards)],
            "cuts": [cuts_name(s) for s in range(num_shards)],
        }
        return WrittenFormat(locations, files, fields, _summary(num_shards, per_shard, last,
                                                                len(items)))  # fmt: skip

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each tar holds the members the manifest places in it, where it says; each cuts
        file lists the same items."""
        by_shard: dict[str, list[dict]] = {}
        for entry in entries:
            by_shard.setdefault(entry.get("shard"), []).append(entry)
        shards, cuts = fmt.get("shards", []), fmt.get("cuts", [])
        for shard in sorted(set(by_shard) - set(shards), key=str):
            yield f"{label}: the manifest names {shard}, which format.json does not list"
        for shard, cuts_file in zip(shards, cuts, strict=False):
            wanted = by_shard.get(shard, [])
            try:
                with tarfile.open(folder / shard) as tar:
                    found = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
                with gzip.open(folder / cuts_file, "rt", encoding="utf-8") as fh:
                    ids = [json.loads(line)["id"] for line in fh if line.strip()]
            except FileNotFoundError:
                continue  # reported by the file check
            except (tarfile.TarError, OSError, EOFError, ValueError, KeyError) as exc:
                yield f"{label}/{shard}: not readable with {cuts_file} ({exc})"
                continue
            for entry in wanted:
                if found.get(entry["member"]) != (entry.get("at"), entry.get("size")):
                    yield f"{label}/{shard}: {entry['member']} is not where the manifest says"
                    break
            if sorted(ids) != sorted(e.get("key") for e in wanted):
                yield f"{label}/{cuts_file}: {len(ids)} cuts, not the {len(wanted)} of {shard}"
