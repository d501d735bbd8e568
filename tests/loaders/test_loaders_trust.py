"""Readers check what they read against what format.json and the manifest promise.

Every damage here is made to real files ``prep shard`` and ``prep convert`` wrote; each
must end in an exception naming the damaged file, never in fewer, repeated or wrong values.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import h5py
import numpy as np
import pytest
import soundfile as sf
from helpers import CORE_FORMATS, make_file
from torch.utils.data import DataLoader

from loaders import (
    ConvertedDataset,
    HDF5Dataset,
    MelDataset,
    MemmapDataset,
    OnTheFlyDataset,
    SegmentsDataset,
    WebDatasetShards,
    open_dataset,
)
from loaders.audio.errors import DecodeError
from loaders.sample import FormatError
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.shard import ShardOptions, shard

MEL = {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 20,
       "f_min": 0.0, "f_max": 8000.0, "log": "natural"}  # fmt: skip
READERS = {
    "segments": SegmentsDataset,
    "mel": MelDataset,
    "webdataset": WebDatasetShards,
    "hdf5": HDF5Dataset,
    "memmap": MemmapDataset,
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Sources, their converted set, and every format of 0.5 s items, 3 per shard."""
    root = tmp_path_factory.mktemp("trust")
    for i, seconds in enumerate([1.2, 0.9, 1.6]):
        make_file(root / "src" / f"a{i}.flac", seconds=seconds)
    assert convert(root / "src", root / "conv", ConvertOptions(jobs=1)).failed == 0
    options = ShardOptions(formats=CORE_FORMATS, segment=8000, mel=MEL, shard_size=3, jobs=1)
    assert shard(root / "conv", root / "sh", options).failed == 0
    return root


@pytest.fixture
def sh(made, tmp_path):
    """A private copy of the shard folders, free to damage."""
    shutil.copytree(made / "sh", tmp_path / "sh")
    return tmp_path / "sh"


def _read_all(dataset) -> list[str]:
    if isinstance(dataset, WebDatasetShards):
        return [s["key"] for s in dataset]
    return [dataset[i]["key"] for i in range(len(dataset))]


def _edit_format(folder, **changes) -> None:
    path = folder / "format.json"
    fmt = json.loads(path.read_text())
    fmt.update(changes)
    path.write_text(json.dumps(fmt))


def test_clean_folders_read_whole(made):
    for name, cls in READERS.items():
        dataset = cls(made / "sh" / name)
        keys = _read_all(dataset)
        assert len(keys) == len(set(keys)) == len(dataset) > 3


# --- format.json ----------------------------------------------------------------------


@pytest.mark.parametrize("name", CORE_FORMATS)
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": 99}, "version 99"),
        ({"sample_rate": 22050}, "sample_rate 22050"),
        ({"num_items": 2}, "says 2 items"),
        ({"format": "other"}, "format 'other'"),
    ],
)
def test_format_json_promises_are_checked_at_open(sh, name, change, reason):
    _edit_format(sh / name, **change)
    with pytest.raises(FormatError, match=reason) as caught:
        READERS[name](sh / name)
    assert str(sh / name / "format.json") in str(caught.value)


@pytest.mark.parametrize("text", ["[1]", "not json {", "", '"webdataset"'])
def test_open_dataset_names_a_format_json_that_is_not_an_object(sh, text):
    (sh / "hdf5" / "format.json").write_text(text)
    with pytest.raises(FormatError, match="format.json: not") as caught:
        open_dataset(sh / "hdf5")
    assert str(sh / "hdf5" / "format.json") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_open_dataset_refuses_a_missing_path_and_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        OnTheFlyDataset(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(FileNotFoundError, match="empty: no audio, format.json or manifest"):
        open_dataset(tmp_path / "empty")


# --- memmap -----------------------------------------------------------------------------


def _rewrite_npy(path, array, fortran=False) -> None:
    with open(path, "wb") as fh:
        header = {"descr": array.dtype.str, "fortran_order": fortran, "shape": array.shape}
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(array.tobytes(order="F" if fortran else "C"))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("dtype", "<u2"),
        ("shape", r"\(4, 8000\)"),
        ("fortran", "Fortran order"),
        ("truncated", "truncated"),
        ("not npy", "not a readable .npy"),
    ],
)
def test_memmap_header_is_checked_against_format_json(sh, damage, reason):
    path = sh / "memmap" / "audio.npy"
    array = np.load(path)
    if damage == "dtype":  # the same bytes read as unsigned: values up to 2.0
        _rewrite_npy(path, array.view("<u2"))
    elif damage == "shape":
        _rewrite_npy(path, array[:4])
    elif damage == "fortran":
        _rewrite_npy(path, array, fortran=True)
    elif damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size - 100)
    else:
        path.write_bytes(b"garbage")
    with pytest.raises(FormatError, match=reason) as caught:
        MemmapDataset(sh / "memmap")
    assert str(path) in str(caught.value)


# --- hdf5 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("drop audio", "no 'audio' dataset"),
        ("drop mel", "no 'mel' dataset"),
        ("audio dtype", "dataset 'audio' is float32"),
        ("audio shape", "dataset 'audio' is int16 \\(2, 8000\\)"),
        ("rate attribute", "sample_rate 8000"),
        ("not hdf5", "not a readable HDF5"),
    ],
)
def test_hdf5_datasets_and_attributes_are_checked_against_format_json(sh, damage, reason):
    path = sh / "hdf5" / "data.h5"
    if damage == "not hdf5":
        path.write_bytes(b"garbage")
    else:
        with h5py.File(path, "r+") as f:
            if damage.startswith("drop"):
                del f[damage.split()[1]]
            elif damage == "audio dtype":
                audio = f["audio"][()]
                del f["audio"]
                f["audio"] = audio.astype(np.float32)
            elif damage == "audio shape":
                audio = f["audio"][:2]
                del f["audio"]
                f["audio"] = audio
            else:
                f.attrs["sample_rate"] = 8000
    with pytest.raises(FormatError, match=reason) as caught:
        HDF5Dataset(sh / "hdf5")
    assert str(path) in str(caught.value)


# --- per-item files -------------------------------------------------------------------


def test_segments_wav_of_another_rate_or_length_is_named(sh):
    entries = read_manifest(sh / "segments" / "manifest.jsonl")
    first, second = (sh / "segments" / e["audio_filepath"] for e in entries[:2])
    samples, _ = sf.read(first, dtype="int16")
    sf.write(first, samples, 8000, subtype="PCM_16")
    sf.write(second, samples[:100], 16000, subtype="PCM_16")
    dataset = SegmentsDataset(sh / "segments")
    with pytest.raises(FormatError, match="8000 Hz 1 ch, expected 16000 Hz mono") as caught:
        dataset[0]
    assert str(first) in str(caught.value)
    with pytest.raises(FormatError, match="100 samples, the manifest says 8000") as caught:
        dataset[1]
    assert str(second) in str(caught.value)


def test_mel_npy_of_another_dtype_or_shape_is_named(sh):
    entries = read_manifest(sh / "mel" / "manifest.jsonl")
    first, second = (sh / "mel" / e["mel_filepath"] for e in entries[:2])
    np.save(first, np.load(first).astype(np.float64))
    np.save(second, np.load(second)[:10])
    dataset = MelDataset(sh / "mel")
    with pytest.raises(FormatError, match="float64") as caught:
        dataset[0]
    assert str(first) in str(caught.value)
    with pytest.raises(FormatError, match=r"\(10, 51\)") as caught:
        dataset[1]
    assert str(second) in str(caught.value)


def test_converted_file_cut_short_or_undecodable_is_named(made, tmp_path):
    conv = tmp_path / "conv"
    shutil.copytree(made / "conv", conv)
    entries = read_manifest(conv / "manifest.jsonl")
    short = conv / entries[0]["audio_filepath"]
    samples, rate = sf.read(short, dtype="int16")
    sf.write(short, samples[:1000], rate, subtype="PCM_16")
    (conv / entries[1]["audio_filepath"]).write_bytes(b"RIFF garbage")
    dataset = ConvertedDataset(conv)
    with pytest.raises(FormatError, match="1000 samples, the manifest says") as caught:
        dataset[0]
    assert str(short) in str(caught.value)
    with pytest.raises(FormatError, match="cannot read it") as caught:
        dataset[1]
    assert entries[1]["audio_filepath"] in str(caught.value)


def test_on_the_fly_decode_error_names_the_file(tmp_path):
    make_file(tmp_path / "src" / "good.flac", seconds=0.3)
    bad = tmp_path / "src" / "bad.mp3"
    bad.write_bytes(b"\x00" * 64)
    dataset = OnTheFlyDataset(tmp_path / "src")
    index = [e["key"] for e in dataset.entries].index("bad.mp3")
    with pytest.raises(DecodeError) as caught:
        dataset[index]
    assert str(bad) in str(caught.value)


# --- webdataset shards ------------------------------------------------------------------


def _members(path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def _cut(path, at: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(at)


def _first_shard(sh):
    return (
        sh / "webdataset" / json.loads((sh / "webdataset" / "format.json").read_text())["shards"][0]
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_shard_cut_at_an_item_boundary_is_named_not_refilled(sh, workers):
    path = _first_shard(sh)
    members = _members(path)
    keys = [m.name.split(".")[0] for m in members]
    second_item = keys.index(keys[-1])  # the first member of the shard's last item
    _cut(path, members[second_item].offset)
    loader = DataLoader(WebDatasetShards(sh / "webdataset"), batch_size=None, num_workers=workers)
    with pytest.raises(FormatError, match="2 items, format.json says 3") as caught:
        list(loader)
    assert str(path) in str(caught.value)


def test_shard_cut_between_an_items_members_is_named(sh):
    path = _first_shard(sh)
    members = _members(path)
    second = next(i for i in range(1, len(members)) if members[i].name.endswith(".wav"))
    _cut(path, members[second].offset)
    with pytest.raises(FormatError, match="has no 'wav' member") as caught:
        list(WebDatasetShards(sh / "webdataset"))
    assert str(path) in str(caught.value)


def test_shard_cut_inside_a_member_is_named(sh):
    path = _first_shard(sh)
    members = _members(path)
    _cut(path, members[1].offset_data + 10)
    with pytest.raises(FormatError, match="not a readable tar shard|has no") as caught:
        list(WebDatasetShards(sh / "webdataset"))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("kind", ["zero bytes", "empty tar"])
def test_empty_shard_is_named(sh, kind):
    path = _first_shard(sh)
    if kind == "zero bytes":
        path.write_bytes(b"")
    else:
        tarfile.open(path, "w").close()
    with pytest.raises(FormatError) as caught:
        list(WebDatasetShards(sh / "webdataset"))
    assert str(path) in str(caught.value)


def test_shard_with_an_extra_item_or_member(sh):
    path = _first_shard(sh)
    key = _members(path)[0].name.split(".")[0]
    extra = sh / "extra.bin"
    extra.write_bytes(b"unknown")
    with tarfile.open(path, "a") as tar:
        tar.add(extra, arcname=f"{key}.extra")  # not next to its item: a new sample
    with pytest.raises(FormatError, match="more than the 3 items|has no") as caught:
        list(WebDatasetShards(sh / "webdataset"))
    assert str(path) in str(caught.value)


def test_shard_item_of_another_rate_is_named(sh):
    path = _first_shard(sh)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name.endswith(".wav"):
                samples, _ = sf.read(io.BytesIO(data), dtype="int16")
                buffer = io.BytesIO()
                sf.write(buffer, samples, 8000, format="WAV", subtype="PCM_16")
                data = buffer.getvalue()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(FormatError, match="8000 Hz 1 ch, expected 16000") as caught:
        list(WebDatasetShards(sh / "webdataset"))
    assert str(path) in str(caught.value)


def test_shard_counts_that_do_not_add_up_are_refused_at_open(sh):
    _edit_format(sh / "webdataset", shard_items=[3, 3])
    with pytest.raises(FormatError, match="do not match|hold 6 items"):
        WebDatasetShards(sh / "webdataset")


def test_old_format_json_without_shard_items_still_reads(made, sh):
    fmt = json.loads((sh / "webdataset" / "format.json").read_text())
    del fmt["shard_items"]
    (sh / "webdataset" / "format.json").write_text(json.dumps(fmt))
    assert sorted(_read_all(WebDatasetShards(sh / "webdataset"))) == sorted(
        _read_all(WebDatasetShards(made / "sh" / "webdataset"))
    )
