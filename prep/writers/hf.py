"""``hf``: a Hugging Face ``datasets`` folder: Parquet shards ``data/SPLIT-0000i-of-0000N.parquet``.

Columns: ``audio`` in the ``Audio`` feature's storage layout (``{"bytes", "path"}``: the
item's WAV/FLAC file, ``path`` its member name ``KEY.wav``), ``key``, ``source``,
``offset``, ``duration``, ``num_samples`` (the real samples; the audio holds the padded
item like the other formats), and ``text``/``label`` when the set has them. The schema
carries the ``huggingface`` metadata ``datasets`` writes itself (``{"info": {"features":
...}}``), so ``datasets.load_dataset(FOLDER)`` types ``audio`` as ``Audio(sampling_rate=SR)``;
the writer options are those of ``Dataset.to_parquet`` in datasets 5.2 (no compression and
PLAIN encoding for the audio, snappy and dictionaries for the rest, content-defined chunks,
a page index). Items stay in the set's order (``datasets`` shuffles at load), in shards
of ``--shard-size``/``--shard-bytes`` and row groups of at most 100 items (random access
reads a whole row group). Parquet holds no time stamps: the bytes repeat.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from manifests import atomic_path, naming
from prep.errors import UsageError
from prep.pcm import encode_pcm16
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import fingerprint_files
from prep.writers.webdataset import CODECS, items_per_shard

ROW_GROUP_ITEMS = 100
"""Items per Parquet row group: datasets' former default for audio (random reads of one
item read its whole group)."""
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}
"""datasets 5.2's ``config.DEFAULT_CDC_OPTIONS`` (content-defined chunking, as it writes)."""
_SPLIT = re.compile(r"^[A-Za-z0-9_]+$")


def shard_name(split: str, index: int, count: int) -> str:
    """The Hub's file naming, from which ``load_dataset`` reads the split."""
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def _column_type(values: list) -> str:
    """The ``Value`` dtype of a text/label column: int64 or float64 when every present
    value is one, else string (other values are written as their JSON)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64"
    if present and all(isinstance(v, float) for v in present):
        return "float64"
    return "string"


def _cell(value, dtype: str):
    if value is None or dtype != "string" or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def features(sample_rate: int, extra: dict[str, str]) -> dict:
    """The ``datasets`` features, as ``Features.to_dict()`` writes them."""
    feats = {"audio": {"sampling_rate": sample_rate, "_type": "Audio"}}
    common = {"key": "string", "source": "string", "offset": "float64",
              "duration": "float64", "num_samples": "int64"}  # fmt: skip
    for name, dtype in {**common, **extra}.items():
        feats[name] = {"dtype": dtype, "_type": "Value"}
    return feats


class HFWriter(FormatWriter):
    name = "hf"

    def params(self, options) -> dict:
        return {
            "split": options.hf_split,
            "shard_size": options.shard_size,
            "shard_bytes": options.shard_bytes,
            "codec": options.codec,
        }

    def validate(self, options) -> None:
        if not _SPLIT.match(options.hf_split or ""):
            raise UsageError(
                f"--hf-split {options.hf_split!r}: use letters, digits and _ (train, validation...)"
            )
        if options.codec not in CODECS:
            raise UsageError(f"--codec must be one of {', '.join(CODECS)}")

    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        import pyarrow as pa  # only when written
        import pyarrow.parquet as pq

        extra = {
            name: _column_type([m.fields.get(name) for m in items])
            for name in ("text", "label")
            if any(name in m.fields for m in items)
        }
        feats = features(options.sample_rate, extra)
        schema = pa.schema(
            [
                ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                *(
                    (
                        name,
                        pa.from_numpy_dtype(spec["dtype"])
                        if spec["dtype"] != "string"
                        else pa.string(),
                    )
                    for name, spec in list(feats.items())[1:]
                ),
            ]  # fmt: skip
        ).with_metadata({"huggingface": json.dumps({"info": {"features": feats}})})
        per_shard = min(items_per_shard(items, options), max(1, len(items)))
        count = math.ceil(len(items) / per_shard)
        codec = options.codec
        locations: list[dict] = []
        names = [shard_name(options.hf_split, s, count) for s in range(count)]
        for s, name in enumerate(names):
            shard = items[s * per_shard : (s + 1) * per_shard]
            path = Path(folder) / name
            with naming(path), atomic_path(path) as tmp:
                writer = pq.ParquetWriter(
                    str(tmp),
                    schema,
                    compression={"audio.bytes": "none", "audio.path": "none"}
                    | {c: "snappy" for c in schema.names[1:]},
                    use_dictionary=schema.names[1:],
                    column_encoding={"audio.bytes": "PLAIN", "audio.path": "PLAIN"},
                    use_content_defined_chunking=CDC_OPTIONS,
                    write_page_index=True,
                )
                for start in range(0, len(shard), ROW_GROUP_ITEMS):
                    group = shard[start : start + ROW_GROUP_ITEMS]
                    columns = {
                        "audio": [
                            {
                                "bytes": encode_pcm16(rows.audio(m), m.sample_rate, codec.upper()),
                                "path": f"{m.key}.{codec}",
                            }
                            for m in group
                        ],
                        "key": [m.key for m in group],
                        "source": [m.source for m in group],
                        "offset": [round(m.start / m.sample_rate, 6) for m in group],
                        "duration": [round(m.num_samples / m.sample_rate, 6) for m in group],
                        "num_samples": [m.num_samples for m in group],
                    }
                    for column, dtype in extra.items():
                        columns[column] = [_cell(m.fields.get(column), dtype) for m in group]
                    writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CDC_OPTIONS)})
                writer.close()
            locations += [{"file": name, "row": i} for i in range(len(shard))]
        fields = {
            "split": options.hf_split,
            "shards": names,
            "shard_items": [min(per_shard, len(items) - s * per_shard) for s in range(count)],
            "hf_features": feats,
        }
        files = fingerprint_files(Path(folder), names)
        summary = f"{count} Parquet shard{'s' if count != 1 else ''}, {len(items)} items"
        return WrittenFormat(locations, files, fields, summary)

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each shard a readable Parquet file of the rows format.json and the manifest say,
        with the ``Audio`` feature's metadata."""
        import pyarrow.parquet as pq

        listed: dict[str, int] = {}
        for entry in entries:
            listed[entry.get("file")] = listed.get(entry.get("file"), 0) + 1
        for shard, count in zip(fmt.get("shards", []), fmt.get("shard_items", []), strict=False):
            name = f"{label}/{shard}"
            try:
                meta = pq.ParquetFile(folder / shard).metadata
            except FileNotFoundError:
                continue  # reported by the file check
            except (OSError, ValueError) as exc:
                yield f"{name}: not a readable Parquet file ({exc})"
                continue
            if meta.num_rows != count or listed.get(shard, 0) != count:
                yield (
                    f"{name}: {meta.num_rows} rows, format.json says {count}, the manifest "
                    f"lists {listed.get(shard, 0)}"
                )
            hf = (meta.metadata or {}).get(b"huggingface", b"{}")
            if json.loads(hf).get("info", {}).get("features", {}).get("audio") is None:
                yield f"{name}: no huggingface Audio feature in its schema metadata"
