"""A format from outside the package, registered by its writer and reader classes alone, is
handled end to end: prep shard (library and command line), open_dataset and prep verify.

The plug-in module is written here into a temporary folder (it is no part of the package):
``toyraw`` keeps every item in one raw int16 file (an aggregate writer), ``toynpy`` one
``.npy`` per item (written by the workers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import REPO, make_file

from loaders import open_dataset
from loaders.formats import READERS, reader_class
from loaders.sample import FormatError
from manifests import read_manifest
from prep.convert import ConvertOptions, convert
from prep.shard import ShardOptions, shard
from prep.verify import verify
from prep.writers import WRITERS

PLUGIN = textwrap.dedent(
    '''
    """A toy audio format, registered on import."""

    import io
    from pathlib import Path

    import numpy as np
    from torch.utils.data import Dataset

    from loaders.formats import FormatReader, register_reader
    from loaders.sample import FormatError, audio_tensor, check_dtype, make_sample, stored_samples
    from prep.writers import register_writer
    from prep.writers.base import FormatWriter, WrittenFormat
    from prep.writers.files import check_file, open_output, write_once

    RAW = "toy.raw"


    class ToyRawWriter(FormatWriter):
        name = "toyraw"

        def params(self, options):
            return {"sample_format": "<i2"}

        def write_all(self, folder, items, rows, options):
            files, locations, at = {}, [], 0
            with open_output(folder, RAW, files) as fh:
                for meta in items:
                    fh.write(np.asarray(rows.audio(meta), dtype="<i2").tobytes())
                    locations.append({"at": at})
                    at += meta.stored_samples
            return WrittenFormat(locations, files, {"file": RAW}, f"{at} samples in {RAW}")


    class ToyNpyWriter(FormatWriter):
        name = "toynpy"
        per_item = True

        def relative_path(self, meta):
            return f"{meta.key}.npy"

        def location(self, meta):
            return {"npy": self.relative_path(meta)}

        def write_item(self, folder, meta, row, mel, options):
            buffer = io.BytesIO()
            np.save(buffer, row)
            return write_once(folder / self.relative_path(meta), buffer.getvalue())

        def verify(self, folder, label, fmt, entries):
            for entry in entries:
                path = folder / entry["npy"]
                yield from check_file(path, f"{label}/{entry['npy']}", None, entry["sha256"])


    class ToyReader(FormatReader, Dataset):
        def __init__(self, folder, dtype="float32"):
            self.folder = Path(folder)
            self.format, self.entries = self.read_folder(self.folder)
            self.sample_rate = int(self.format["sample_rate"])
            self.dtype = check_dtype(dtype)

        def __len__(self):
            return len(self.entries)

        def __getitem__(self, index):
            entry = self.entries[index]
            row = self.row(entry)
            if len(row) != stored_samples(self.format, entry):
                raise FormatError(f"{self.folder}: {entry['key']} has {len(row)} samples")
            return make_sample(entry, self.sample_rate, audio=audio_tensor(row, self.dtype))


    class ToyRawReader(ToyReader):
        format_name = "toyraw"

        def __init__(self, folder, dtype="float32"):
            super().__init__(folder, dtype)
            self.samples = np.fromfile(self.folder / self.format["file"], dtype="<i2")

        def row(self, entry):
            return self.samples[entry["at"] : entry["at"] + stored_samples(self.format, entry)]


    class ToyNpyReader(ToyReader):
        format_name = "toynpy"

        def row(self, entry):
            return np.load(self.folder / entry["npy"])


    for _name, _writer, _reader in (
        ("toyraw", ToyRawWriter, ToyRawReader),
        ("toynpy", ToyNpyWriter, ToyNpyReader),
    ):
        register_writer(_name, _writer)
        register_reader(_name, _reader)
    '''
)

TOYS = ("toyraw", "toynpy")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plug-in module, imported (so registered) here, and its folder for subprocesses;
    unregistered at the end."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "toyformat.py").write_text(PLUGIN)
    sys.path.insert(0, str(folder))
    try:
        import toyformat  # noqa: F401 - registers the toy formats
    finally:
        sys.path.remove(str(folder))
    yield folder
    for name in TOYS:  # the other tests see the built-in formats only
        WRITERS.remove(name)
        READERS.remove(name)
    sys.modules.pop("toyformat", None)


@pytest.fixture(scope="module")
def made(plugin, tmp_path_factory):
    """A converted set cut into segments and the toy formats (2 s items, a kept tail)."""
    root = tmp_path_factory.mktemp("toy")
    for i, seconds in enumerate([1.5, 3.2, 4.7]):
        make_file(root / "src" / f"a{i}.ogg", seconds=seconds)
    assert convert(root / "src", root / "conv", ConvertOptions(jobs=1)).failed == 0
    options = ShardOptions(formats=("segments", *TOYS), segment=32000, last="keep", jobs=2)
    summary = shard(root / "conv", root / "sh", options)
    assert summary.failed == 0 and summary.items > 3
    return root


def _items(folder):
    dataset = open_dataset(folder, dtype="int16")
    return [(s["key"], s["length"], s["audio"].numpy()) for s in dataset]


def test_a_registered_format_is_sharded_opened_and_verified(made):
    segments = _items(made / "sh" / "segments")
    for name in TOYS:
        toy = _items(made / "sh" / name)
        assert [k for k, _, _ in toy] == [k for k, _, _ in segments]
        for (_, length, audio), (_, seg_length, seg_audio) in zip(toy, segments, strict=True):
            assert length == seg_length and audio.dtype == np.int16
            assert np.array_equal(audio, seg_audio)  # bit for bit
    fmt = (made / "sh" / "toyraw" / "format.json").read_text()
    assert '"sample_format": "<i2"' in fmt and '"toy.raw"' in fmt
    report = verify(made / "sh")
    assert report.ok, report.problems
    assert sorted(report.checked) == sorted(("segments", *TOYS))


def test_a_corrupt_toy_file_is_named_by_verify(made, tmp_path):
    copy = tmp_path / "sh"
    shutil.copytree(made / "sh", copy)
    raw = copy / "toyraw" / "toy.raw"
    data = bytearray(raw.read_bytes())
    data[100] ^= 0xFF
    raw.write_bytes(bytes(data))
    entry = read_manifest(copy / "toynpy" / "manifest.jsonl")[1]
    npy = copy / "toynpy" / entry["npy"]
    npy.write_bytes(npy.read_bytes()[:-2])
    problems = verify(copy).problems
    assert any(p.startswith("toyraw/toy.raw: content differs") for p in problems), problems
    assert any(p.startswith(f"toynpy/{entry['npy']}: content differs") for p in problems)
    assert len(problems) == 2, problems


def test_a_reader_holds_format_json_to_its_own_name_and_version(made, tmp_path):

    with pytest.raises(FormatError, match="format 'segments', expected 'toyraw'"):
        reader_class("toyraw")(made / "sh" / "segments")
    copy = tmp_path / "toyraw"
    shutil.copytree(made / "sh" / "toyraw", copy)
    fmt = json.loads((copy / "format.json").read_text())
    (copy / "format.json").write_text(json.dumps({**fmt, "version": 2}))
    with pytest.raises(FormatError, match="version 2; this reader reads version 1"):
        open_dataset(copy)
    (copy / "format.json").write_text(json.dumps({**fmt, "format": "toyzip"}))
    with pytest.raises(FormatError, match="unknown format 'toyzip'"):
        open_dataset(copy)


def test_the_command_line_takes_a_registered_format(plugin, made, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)])}
    code = "import sys, toyformat; from prep.cli import main; sys.exit(main())"
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-c", code, "shard", str(made / "conv"), str(out),
         "--format", " ToyRaw , toynpy,TOYRAW", "--segment", "2s", "--last", "keep", "-j", "2"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "toyraw: " in proc.stderr and "samples in toy.raw" in proc.stderr
    for name in TOYS:  # the same bytes as the library run made
        for path in (made / "sh" / name).rglob("*"):
            if path.is_file() and path.name != "format.json":
                assert (out / name / path.relative_to(made / "sh" / name)).read_bytes() == (
                    path.read_bytes()
                ), path
    verified = subprocess.run(
        [sys.executable, "-c", code, "verify", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert verified.returncode == 0 and "all good" in verified.stderr, verified.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "prep.cli", "shard", str(made / "conv"), str(tmp_path / "x"),
         "--format", "toyraw"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown --format 'toyraw'" in unknown.stderr
