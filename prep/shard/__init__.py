"""``prep shard``: presplit segments, log-mel, WebDataset shards, HDF5 and memmap in one pass.

Pass 1 (parallel): each source is decoded once, cut into items, its mel computed, the
per-item formats (``segments``, ``mel``) written directly, and the items staged for the
aggregate formats. Pass 2 (this process): the staged items, in a deterministic order,
become WebDataset shards, one HDF5 file and one memmap. Every output is written under a
temporary name and renamed; a format whose ``format.json`` matches this run is skipped.
The formats are the writers registered in :mod:`prep.writers`: this module asks each
writer what it is (per item or aggregate, with mel, ...), never a format's name.
"""

from prep.shard.inputs import input_fingerprint, read_inputs
from prep.shard.options import FORMAT_VERSION, ShardOptions
from prep.shard.run import shard
from prep.shard.summary import ShardSummary

__all__ = [
    "FORMAT_VERSION",
    "ShardOptions",
    "ShardSummary",
    "input_fingerprint",
    "read_inputs",
    "shard",
]
