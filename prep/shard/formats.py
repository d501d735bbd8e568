"""Pass 2, in this process: each format's aggregate files, manifest and ``format.json``, asked
of its writer.
"""

from __future__ import annotations

import json

from manifests import Entry, naming
from prep.errors import UsageError
from prep.shard.options import FORMAT_VERSION, TEXT_DROPPED, ShardOptions
from prep.shard.summary import count_of
from prep.storage import Location
from prep.writers import ItemMeta, StagedRows, get_writer, writer_names


def remote_formats() -> tuple[str, ...]:
    """The formats whose writers stream to object storage."""
    return tuple(n for n in writer_names() if get_writer(n).streams_to_object_storage)


def check_remote_out(out: Location, options: ShardOptions) -> None:
    """Object storage takes streamed shards; the random-access formats need a file system."""
    other = [f for f in options.formats if not get_writer(f).streams_to_object_storage]
    if other:
        raise UsageError(
            f"{', '.join(other)} cannot be written to {out}: only {', '.join(remote_formats())} "
            "shards go to object storage (write the others to a local or shared folder)"
        )
    if options.backend != "local":
        raise UsageError(
            "shards on object storage are written from this machine: use --backend local "
            "(or a shared folder as OUT with --backend dask)"
        )


def _uint8_error(items: list[ItemMeta]) -> float:
    """The largest error uint8 storage adds to any bin: half a quantisation step."""
    steps = [(m.mel_fields["mel_max"] - m.mel_fields["mel_min"]) / 255 for m in items]
    return round(max(steps, default=0.0) / 2, 6)


def _common_fields(meta: ItemMeta) -> Entry:
    sr = meta.sample_rate
    entry: Entry = {
        "key": meta.key,
        "source": meta.source,
        "offset": round(meta.start / sr, 6),
        "duration": round(meta.num_samples / sr, 6),
        "num_samples": meta.num_samples,
    }
    entry.update(meta.fields)
    return entry


def write_format(
    name: str,
    folder: Location,
    items: list[ItemMeta],
    rows: StagedRows,
    options: ShardOptions,
    fingerprint: str,
) -> str:
    """Pass 2 for one format: its aggregate files, manifest and format.json; its summary."""
    writer = get_writer(name)
    if writer.per_item:
        locations = [{**writer.location(m), "sha256": m.hashes[name]} for m in items]
        written = None
    else:
        written = writer.write_all(folder.path, items, rows, options)
        locations = written.locations
    entries = []
    for meta, location in zip(items, locations, strict=True):
        entry = _common_fields(meta)
        entry.update(location)
        if writer.carries_mel:
            entry.update(meta.mel_fields)
        entries.append(entry)
    manifest = folder.join("manifest.jsonl")
    with naming(manifest.path):
        manifest.write_manifest(entries)
    params = options.format_params(name)
    text = count_of(len(items), "item")
    extra: dict = {}
    if written is not None:
        extra = {**written.fields, "files": written.files}
        text = written.summary or text
    if options.wants_mel and options.mel_dtype == "uint8" and "mel" in params:
        extra["mel_uint8_max_error"] = _uint8_error(items)
    dropped = sum(m.text_dropped for m in items)
    if dropped:
        extra.update(text_dropped=TEXT_DROPPED, text_dropped_items=dropped)
    fmt = {
        "format": name,
        "version": FORMAT_VERSION,
        **params,
        "num_items": len(items),
        **extra,
        "params": params,
        "input": fingerprint,
    }
    fmt_text = json.dumps(fmt, indent=2) + "\n"
    fmt_file = folder.join("format.json")
    with naming(fmt_file.path):
        fmt_file.write_bytes(fmt_text.encode("utf-8"))
    folder.join(".params.json").remove()
    return text
