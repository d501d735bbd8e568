"""``nemo_tarred``: NeMo's tarred audio dataset, as its ``convert_to_tarred_audio_dataset.py``
lays it out.

``audio_0.tar`` ... ``audio_{N-1}.tar`` (NeMo's ``tarred_audio_filepaths:
audio_{0..N-1}.tar``), each holding flat members ``KEY.wav`` (keys have no dots or
slashes, so NeMo's name squashing leaves them as they are); ``tarred_audio_manifest.json``
with one line per item: ``audio_filepath`` (the member's name), ``duration`` (the real
length, unrounded: NeMo cuts the audio it reads to it, so the padding of a padded item is
left off), ``shard_id``, and ``text``/``label`` when the set has them; and NeMo's
per-shard copies ``sharded_manifests/manifest_{i}.json``. The shard count (``--nemo-num-
shards``, else from ``--shard-size``/``--shard-bytes``) is raised to a multiple of
``--nemo-world-size``, as NeMo's ``scatter`` strategy needs. Items are shuffled across
shards with ``--shuffle-seed``; unlike NeMo's script, which drops the remainder, every item
is kept: shard sizes differ by at most one. Tar headers carry a fixed mtime and owner.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests import atomic_path, naming
from prep.errors import RunError, UsageError
from prep.pcm import encode_pcm16
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import fingerprint_files
from prep.writers.webdataset import CODECS, items_per_shard

MANIFEST = "tarred_audio_manifest.json"


def shard_name(index: int) -> str:
    return f"audio_{index}.tar"


def shard_manifest_name(index: int) -> str:
    return f"sharded_manifests/manifest_{index}.json"


def num_shards(items: list, options) -> int:
    """The shard count: asked for or from the shard size, raised to a multiple of the
    world size; derived counts stay within the items, asked-for ones must."""
    num_items, world = len(items), options.nemo_world_size
    if num_items < world:
        raise RunError(
            f"nemo_tarred: {num_items} items cannot fill one shard for each of "
            f"--nemo-world-size {world}"
        )
    if options.nemo_num_shards:
        count = math.ceil(options.nemo_num_shards / world) * world
        if count > num_items:
            raise RunError(
                f"nemo_tarred: {num_items} items cannot fill {count} shards "
                f"(--nemo-num-shards {options.nemo_num_shards}, a multiple of "
                f"--nemo-world-size {world}); ask for fewer"
            )
        return count
    count = math.ceil(num_items / items_per_shard(items, options))
    count = math.ceil(count / world) * world
    return min(count, num_items // world * world)


def _member(meta, codec: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(f"{meta.key}.{codec}")
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = "audioprep"
    return info, io.BytesIO(data)


def _nemo_line(meta, shard: int, codec: str) -> dict:
    line = {
        "audio_filepath": f"{meta.key}.{codec}",
        "duration": meta.num_samples / meta.sample_rate,
    }
    for name in ("text", "label"):
        if name in meta.fields:
            line[name] = meta.fields[name]
    line["shard_id"] = shard
    return line


def _jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")


class NemoTarredWriter(FormatWriter):
    name = "nemo_tarred"

    def params(self, options) -> dict:
        return {
            "shuffle_seed": options.shuffle_seed,
            "shard_size": options.shard_size,
            "shard_bytes": options.shard_bytes,
            "nemo_num_shards": options.nemo_num_shards,
            "nemo_world_size": options.nemo_world_size,
            "codec": options.codec,
        }

    def validate(self, options) -> None:
        if options.codec not in CODECS:
            raise UsageError(f"--codec must be one of {', '.join(CODECS)}")
        if options.nemo_world_size < 1:
            raise UsageError("--nemo-world-size must be 1 or more")
        if options.nemo_num_shards is not None and options.nemo_num_shards < 1:
            raise UsageError("--nemo-num-shards must be 1 or more")

    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        folder, codec = Path(folder), options.codec
        count = num_shards(items, options)
        order = np.random.default_rng(options.shuffle_seed).permutation(len(items))
        sizes = [len(items) // count + (s < len(items) % count) for s in range(count)]
        locations: list[dict] = [{} for _ in items]
        nemo_lines: list[dict] = []
        names, at = [], 0
        for s, size in enumerate(sizes):
            name, shard_lines = shard_name(s), []
            with (
                naming(folder / name),
                atomic_path(folder / name) as tmp,
                tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar,
            ):
                for i in order[at : at + size]:
                    meta = items[i]
                    data = encode_pcm16(rows.audio(meta), meta.sample_rate, codec.upper())
                    tar.addfile(*_member(meta, codec, data))
                    locations[i] = {"shard": name, "member": f"{meta.key}.{codec}"}
                    shard_lines.append(_nemo_line(meta, s, codec))
            at += size
            part = folder / shard_manifest_name(s)
            with naming(part), atomic_path(part) as tmp:
                tmp.write_bytes(_jsonl(shard_lines))
            nemo_lines += shard_lines
            names += [name, shard_manifest_name(s)]
        with naming(folder / MANIFEST), atomic_path(folder / MANIFEST) as tmp:
            tmp.write_bytes(_jsonl(nemo_lines))
        names.append(MANIFEST)
        fields = {
            "num_shards": count,
            "shards": [shard_name(s) for s in range(count)],
            "shard_items": sizes,
            "tarred_audio_filepaths": f"audio_{{0..{count - 1}}}.tar",
            "manifest_filepath": MANIFEST,
            "sharded_manifests": f"sharded_manifests/manifest_{{0..{count - 1}}}.json",
        }
        summary = f"{count} NeMo tar shard{'s' if count != 1 else ''}, {len(items)} items"
        return WrittenFormat(locations, fingerprint_files(folder, names), fields, summary)

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """The shard count a multiple of the world size; each tar holding the members the
        manifest lists for it; NeMo's manifest naming them with their shard."""
        world = fmt.get("nemo_world_size") or 1
        shards = fmt.get("shards", [])
        if len(shards) % world:
            yield f"{label}/format.json: {len(shards)} shards, not a multiple of world size {world}"
        wanted: dict[str, list[str]] = {}
        for entry in entries:
            wanted.setdefault(entry.get("shard"), []).append(entry.get("member"))
        for shard in shards:
            try:
                with tarfile.open(folder / shard) as tar:
                    members = tar.getnames()
            except FileNotFoundError:
                continue  # reported by the file check
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield f"{label}/{shard}: not a readable tar ({exc})"
                continue
            if sorted(members) != sorted(wanted.get(shard, [])):
                yield (
                    f"{label}/{shard}: {len(members)} members, the manifest lists "
                    f"{len(wanted.get(shard, []))} (or other names)"
                )
        try:
            text = (folder / MANIFEST).read_text(encoding="utf-8")
            lines = [json.loads(x) for x in text.splitlines() if x.strip()]
        except FileNotFoundError:
            return  # reported by the file check
        except (ValueError, UnicodeDecodeError) as exc:
            yield f"{label}/{MANIFEST}: not JSON lines ({exc})"
            return
        nemo = sorted(
            (x.get("audio_filepath"), shards[x["shard_id"]])
            for x in lines
            if isinstance(x.get("shard_id"), int) and 0 <= x["shard_id"] < len(shards)
        )
        if len(nemo) != len(lines):
            yield f"{label}/{MANIFEST}: a line has no shard_id of a listed shard"
        ours = sorted((e.get("member"), e.get("shard")) for e in entries)
        if nemo != ours:
            yield f"{label}/{MANIFEST}: its audio_filepath/shard_id do not match the shards"
