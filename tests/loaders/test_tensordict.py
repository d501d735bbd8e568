"""The ``tensordict`` format: prep shard writes tensordict's memory-mapped layout, prep
verify checks it, ``TensorDict.load_memmap`` and :class:`TensorDictDataset` read it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import MEL, REPO, make_file, modules_loaded_by, run_prep
from tensordict import TensorDict

from loaders import MelDataset, MemmapDataset, batch_loader, open_dataset
from loaders.sample import FormatError
from loaders.tensordict import TensorDictDataset
from manifests import read_manifest
from prep.errors import UsageError
from prep.shard import ShardOptions, shard
from prep.verify import verify

SEGMENT = 16000


@pytest.fixture(scope="module")
def sh(converted_set, tmp_path_factory) -> Path:
    """The session's converted set as memmap, tensordict (with mel) and mel, one run."""
    out = tmp_path_factory.mktemp("tensordict") / "sh"
    options = ShardOptions(
        formats=("memmap", "tensordict", "mel"), segment=SEGMENT, mel=MEL, jobs=1
    )
    assert shard(converted_set / "conv", out, options).failed == 0
    return out


@pytest.fixture
def copy(sh, tmp_path) -> Path:
    """A copy of the tensordict folder to damage."""
    return Path(shutil.copytree(sh / "tensordict", tmp_path / "tensordict"))


def _by_key(folder: Path) -> dict[str, dict]:
    return {e["key"]: e for e in read_manifest(folder / "manifest.jsonl")}


def test_round_trip_is_bit_exact_with_the_memmap_and_mel_of_the_same_run(sh):
    td = TensorDict.load_memmap(sh / "tensordict" / "data")  # tensordict's own reader
    array = np.load(sh / "memmap" / "audio.npy")
    memmap_rows, entries = _by_key(sh / "memmap"), _by_key(sh / "tensordict")
    assert sorted(entries) == sorted(memmap_rows) and td.batch_size == (len(entries),)
    mel = MelDataset(sh / "mel")
    mel_of = {s["key"]: s["mel"] for s in mel}
    for key, entry in entries.items():
        row = entry["row"]
        assert np.array_equal(td["audio"][row].numpy(), array[memmap_rows[key]["row"]])
        assert int(td["lengths"][row]) == entry["num_samples"]
        assert torch.equal(td["mel"][row], mel_of[key])
    assert td["audio"].dtype == torch.int16 and td["audio"].shape == (len(entries), SEGMENT)
    assert (td["lengths"] < SEGMENT).any()  # padded items keep their real length
    rows = torch.tensor([3, 0, 2])  # a batch by index, as torchrl's storages read one
    assert torch.equal(td[rows]["audio"], torch.from_numpy(array[[3, 0, 2]]))
    fmt = json.loads((sh / "tensordict" / "format.json").read_text())
    assert fmt["tensors"]["audio"] == {"dtype": "int16", "shape": [len(entries), SEGMENT]}
    assert set(fmt["files"]) == {f"data/{p.name}" for p in (sh / "tensordict" / "data").iterdir()}
    assert not [p for p in (sh / "tensordict").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_the_reader_gives_the_memmap_readers_batches(sh, dtype):
    ours = open_dataset(sh / "tensordict", dtype=dtype, with_mel=True)
    assert isinstance(ours, TensorDictDataset) and ours.reads_batches
    theirs = MemmapDataset(sh / "memmap", dtype=dtype)
    assert len(ours) == len(theirs)
    for a, b in zip(
        batch_loader(ours, 4, shuffle=True, seed=3),
        batch_loader(theirs, 4, shuffle=True, seed=3),
        strict=True,
    ):
        assert a["key"] == b["key"]
        for field in ("audio", "lengths", "attention_mask"):
            assert torch.equal(a[field], b[field]) and a[field].dtype == b[field].dtype, field
        assert a["mel"].shape[:2] == (len(a["key"]), MEL["n_mels"])
    sample, expected = ours[1], theirs[1]
    assert torch.equal(sample["audio"], expected["audio"]) and "mel" in sample
    assert sample["length"] == expected["length"] and sample["key"] == expected["key"]


@pytest.mark.parametrize(("workers", "dtype"), [(1, "int16"), (2, "float32")])
def test_batch_loader_with_shared_slots_gives_the_plain_batches(sh, workers, dtype):
    dataset = TensorDictDataset(sh / "tensordict", dtype=dtype, with_mel=workers == 2)
    shared = batch_loader(
        dataset, 3, shuffle=True, seed=5, shared_slots=True, num_workers=workers,
        persistent_workers=True,
    )  # fmt: skip
    plain = batch_loader(dataset, 3, shuffle=True, seed=5)
    start, size = shared.ring.buffers.data_ptr(), shared.ring.buffers.numel()
    for _epoch in range(2):
        keys = []
        for ours, expected in zip(shared, plain, strict=True):
            assert set(ours) == set(expected) and ours["key"] == expected["key"]
            for field, value in expected.items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(ours[field], value), field
            assert start <= ours["audio"].data_ptr() < start + size  # read into the slot
            keys += ours["key"]
        assert sorted(keys) == sorted(e["key"] for e in dataset.entries)


def test_uint8_mel_reads_back_as_the_mel_format_does(converted_set, tmp_path):
    out = tmp_path / "sh"
    options = ShardOptions(
        formats=("tensordict", "mel"), segment=SEGMENT, mel=MEL, mel_dtype="uint8", jobs=1
    )
    assert shard(converted_set / "conv", out, options).failed == 0
    td = TensorDict.load_memmap(out / "tensordict" / "data")
    assert td["mel"].dtype == torch.uint8 and td["mel_min"].dtype == torch.float64
    expected = {s["key"]: s["mel"] for s in MelDataset(out / "mel")}
    batch = TensorDictDataset(out / "tensordict", with_mel=True).read_batch([0, 1, 2])
    for key, mel in zip(batch["key"], batch["mel"], strict=True):
        assert torch.equal(mel, expected[key])
    assert verify(out).problems == []


def test_verify_passes_and_names_a_changed_file_and_a_reshaped_meta(sh, copy):
    assert verify(sh).problems == []
    with open(copy / "data" / "audio.memmap", "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    meta = json.loads((copy / "data" / "meta.json").read_text())
    meta["audio"]["shape"][1] = 8000
    (copy / "data" / "meta.json").write_text(json.dumps(meta))
    problems = "\n".join(verify(copy).problems)
    assert "tensordict/data/audio.memmap: content differs" in problems
    assert "tensordict/data/meta.json: 'audio' is torch.int16 [" in problems
    (copy / "data" / "lengths.memmap").unlink()
    assert "tensordict/data/lengths.memmap: missing" in "\n".join(verify(copy).problems)


def test_the_reader_refuses_at_open_what_format_json_does_not_promise(copy):
    with open(copy / "data" / "audio.memmap", "r+b") as fh:
        fh.truncate(4096)
    with pytest.raises(FormatError, match=r"audio\.memmap: 4096 bytes, 'audio' needs"):
        TensorDictDataset(copy)
    shutil.copy(copy / "data" / "mel.memmap", copy / "data" / "audio.memmap")
    meta = json.loads((copy / "data" / "meta.json").read_text())
    meta["audio"]["dtype"] = "torch.float32"
    (copy / "data" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=re.escape(str(copy / "data" / "meta.json"))):
        TensorDictDataset(copy)


def test_the_reader_refuses_lengths_that_disagree_with_the_manifest(copy):
    td = TensorDict.load_memmap(copy / "data")
    td["lengths"][0] += 1  # written through the map: the file now disagrees
    del td
    with pytest.raises(FormatError, match="stored lengths differ from the manifest"):
        TensorDictDataset(copy)


def test_a_rerun_replaces_what_an_interrupted_run_left(sh, converted_set, tmp_path):
    out = tmp_path / "sh"
    out.mkdir()
    folder = shutil.copytree(sh / "tensordict", out / "tensordict")
    (folder / "format.json").unlink()  # killed after data/ was renamed into place
    (folder / ".data.partial").mkdir()  # and another killed while writing
    (folder / ".data.partial" / "audio.memmap").write_bytes(b"junk")
    options = ShardOptions(formats=("tensordict",), segment=SEGMENT, mel=MEL, jobs=1)
    assert list(shard(converted_set / "conv", out, options).written_formats) == ["tensordict"]
    assert sorted(p.name for p in folder.iterdir()) == ["data", "format.json", "manifest.jsonl"]
    assert not (folder / "data" / "mel.memmap").exists()  # this run's settings: no mel
    assert verify(out).problems == []
    with pytest.raises(ValueError, match="stores no mel"):
        TensorDictDataset(folder, with_mel=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_partial(tmp_path):
    for i in range(3):
        make_file(tmp_path / "raw" / f"a{i}.flac", seconds=6.0, sr=16000, channels=1)
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(  # room for the staged rows (576 KB), not for them again
        ["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"mounts a tmpfs (as root): {mounted.stderr!r}")
    try:
        proc = run_prep("shard", str(tmp_path / "raw"), str(disk / "o"), "--segment", "1s",
                        "--format", "tensordict", "-j", "1")  # fmt: skip
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        named = f"{disk / 'o' / 'tensordict' / 'data' / 'audio.memmap'}: No space left on device"
        assert named in proc.stderr.strip().splitlines()[-1]
        assert not [p for p in (disk / "o").rglob("*") if "partial" in p.name]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_it_needs_fixed_length_items():
    with pytest.raises(UsageError, match="tensordict needs fixed-length items"):
        ShardOptions(formats=("tensordict",), segment=SEGMENT, last="keep").validate()


def test_tensordict_is_imported_only_by_its_reader_and_writer():
    code = (
        "import loaders; from loaders import *; import loaders.open, loaders.memmap; "
        "from prep.shard import shard; from prep.writers import get_writer; "
        "[get_writer(n) for n in ('memmap', 'tensordict')]; import prep.verify"
    )
    assert modules_loaded_by(code, ("tensordict",)) == []
    importers = sorted(
        path.relative_to(REPO).as_posix()
        for package in ("loaders", "prep", "manifests")
        for path in (REPO / package).rglob("*.py")
        if re.search(r"^\s*(from|import) tensordict\b", path.read_text(), re.MULTILINE)
    )
    assert importers == ["loaders/tensordict.py", "prep/writers/tensordict.py"]
