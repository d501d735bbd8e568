"""NVIDIA DALI pipelines over ``prep shard`` folders, yielding ``batch_loader``'s batches.

:func:`dali_loader` (:class:`DaliLoader`) reads each format the DALI way: ``segments/`` through
``fn.readers.file`` and ``fn.decoders.audio``, ``mel/`` through ``fn.readers.numpy``,
``webdataset/`` through ``fn.readers.webdataset`` (with the ``.idx`` files ``prep shard``
writes), and ``memmap/`` / ``hdf5/`` through ``fn.external_source`` fed by our own batch
reads. ``mel=True`` computes log-mel inside the pipeline (``fn.spectrogram``,
``fn.mel_filter_bank``, ``fn.to_decibels``), matching :class:`~loaders.mel.LogMel`.

Every item once per epoch: ranks split the items as DALI shards them (rank ``r`` of ``W``
takes items ``N*r//W`` to ``N*(r+1)//W`` of the epoch's order), so the ranks together read
each item exactly once and their counts differ by at most one item (no repeats are added,
unlike :class:`~loaders.webdataset.WebDatasetShards`; a rank may get one batch fewer).
The last batch of an epoch is partial, never padded. Shuffled epochs follow from ``seed``
(DALI's ``shuffle_after_epoch_seed``; for webdataset the shard order plus a buffer of
items, as DALI shuffles it).

DALI is imported here only: ``import loaders`` never loads it.
"""

from __future__ import annotations

import enum
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from nvidia.dali import fn, types
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from loaders.collate import padding_mask
from loaders.mel import LogMel
from loaders.mel_storage import from_storage
from loaders.sample import FormatError, check_dtype, parse_format, read_folder, stored_samples
from loaders.sample import to_float as _to_float

_READER = "reader"  # the DALI reader's name, for the iterator's epoch bookkeeping
_LN10 = math.log(10.0)
_LOG_FLOOR = 1e-10  # LogMel's clamp


class DaliDevice(enum.StrEnum):
    """Where the pipeline's stages after reading run (decoding is on the CPU either way)."""

    CPU = "cpu"
    GPU = "gpu"


def rank_span(num_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """The epoch positions rank ``rank`` reads: DALI's own shard bounds."""
    return num_items * rank // world_size, num_items * (rank + 1) // world_size


class DaliLoader:
    """An iterable over ``path`` (a ``prep shard`` format folder) yielding one epoch of
    batches per ``for`` loop, as :func:`~loaders.batched.batch_loader` makes them: ``key``,
    ``sample_rate``, ``lengths``, ``audio`` ``[B, T]`` (float32, or int16 with
    ``dtype="int16"``), ``attention_mask``, ``text``/``label`` where the manifest has them;
    ``mel`` and ``mel_lengths`` from a ``mel/`` folder, or with ``mel=True`` (computed in
    the pipeline with the folder's format.json ``mel`` settings, else
    :class:`~loaders.mel.LogMel`'s defaults). ``device="gpu"`` runs the stages after
    decoding on this process's CUDA device and yields tensors there. ``len()`` is this
    rank's batches per epoch."""

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str = "cpu",
        mel: bool = False,
        dtype: str = "float32",
        num_threads: int = 2,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        try:
            self.device = DaliDevice(device)
        except ValueError:
            choices = ", ".join(d.value for d in DaliDevice)
            raise ValueError(f"device must be one of {choices}, not {device!r}") from None
        self.folder = Path(path)
        self.dtype = check_dtype(dtype)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        fmt_file = self.folder / "format.json"
        if not fmt_file.exists():
            raise FormatError(f"{fmt_file}: missing (not a prep shard folder)")
        name = parse_format(fmt_file.read_bytes(), fmt_file).get("format")
        if name not in _SOURCES:
            raise ValueError(
                f"{self.folder}: {name!r} folders have no DALI pipeline "
                f"(one of {', '.join(sorted(_SOURCES))})"
            )
        self.format_name = name
        self.dataset = None
        if name in ("memmap", "hdf5"):  # our reader checks the folder and reads the batches
            from loaders.open import open_dataset

            self.dataset = open_dataset(self.folder, dtype="int16")
            self.format, self.entries = self.dataset.format, self.dataset.entries
        else:
            self.format, self.entries = read_folder(self.folder, name)
        if not self.entries:
            raise ValueError(f"{self.folder}: no items to read")
        self.sample_rate = int(self.format["sample_rate"])
        self.mel_config = None
        if mel and name != "mel":
            self.mel_config = self.format.get("mel") or LogMel().config
        device_id = torch.cuda.current_device() if self.device is DaliDevice.GPU else None
        self.pipe = Pipeline(
            batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed
        )
        with self.pipe:
            outputs = _SOURCES[name](self)
            self.pipe.set_outputs(*outputs.values())
        self.names = list(outputs)
        reads_files = self.dataset is None
        self._iterator = DALIGenericIterator(
            [self.pipe],
            self.names,
            reader_name=_READER if reads_files else None,
            last_batch_policy=LastBatchPolicy.PARTIAL,
            auto_reset=True,
        )

    def __len__(self) -> int:
        first, stop = rank_span(len(self.entries), self.rank, self.world_size)
        return math.ceil((stop - first) / self.batch_size)

    def __iter__(self):
        for (out,) in self._iterator:
            if len(out["index"]):  # DALI gives a smaller shard an empty last batch: skip it
                yield self._batch(out)

    # pipeline pieces
    def _shard_args(self) -> dict:
        """The reader's sharding and shuffling: exactly once per epoch, last batch partial."""
        args = {
            "name": _READER,
            "shard_id": self.rank,
            "num_shards": self.world_size,
            "pad_last_batch": True,  # the iterator drops the padding
        }
        if self.shuffle:
            args.update(shuffle_after_epoch=True, shuffle_after_epoch_seed=self.seed)
        else:
            args["stick_to_shard"] = True
        return args

    def _decoded(self, encoded) -> dict:
        """Encoded WAV/FLAC to int16 ``audio`` ``[T]``, with the decoded shape and rate
        kept for the per-batch checks (mono, length, rate)."""
        audio, rate = fn.decoders.audio(encoded, dtype=types.INT16, downmix=False)
        return {"audio_shape": audio.shape(), "rate": rate, "audio": audio[:, 0]}

    def _audio_outputs(self, index, audio, checks: dict) -> dict:
        """The outputs of an audio pipeline: padded audio, and log-mel when asked for."""
        if self.device is DaliDevice.GPU:
            audio = audio.gpu()
        outputs = {"index": index, **checks}
        if self.mel_config is not None:
            mel = log_mel(audio, self.mel_config)
            outputs["mel_shape"] = mel.shape()
            outputs["mel"] = fn.pad(mel, fill_value=0.0)
        outputs["audio"] = fn.pad(audio, fill_value=0)
        return outputs

    # each DALI batch to our batch
    def _batch(self, out: dict) -> dict:
        index = self._index_of(out["index"])
        entries = [self.entries[i] for i in index]
        self._check(out, entries)
        lengths = [int(e["num_samples"]) for e in entries]
        batch: dict = {
            "key": [e["key"] for e in entries],
            "sample_rate": self.sample_rate,
            "lengths": torch.tensor(lengths, dtype=torch.long),
        }
        if "audio" in out:
            audio = out["audio"]
            batch["audio"] = audio if self.dtype == "int16" else _to_float(audio)
            mask = padding_mask(lengths, audio.shape[-1])
            batch["attention_mask"] = mask.to(audio.device)
        if "mel" in out:
            batch["mel"] = out["mel"]
            batch["mel_lengths"] = out["mel_shape"][:, -1].to(torch.long).cpu()
            if self.format_name == "mel":
                batch["mel"] = self._stored_mel(out["mel"], entries, batch["mel_lengths"])
        for name in ("text", "label"):
            if name in entries[0]:
                batch[name] = [e.get(name) for e in entries]
        return batch

    def _check(self, out: dict, entries: list[dict]) -> None:
        """What our readers check as they open each file, from the shapes DALI decoded."""
        if "audio_shape" in out:
            shapes, rates = out["audio_shape"].tolist(), out["rate"].reshape(-1).tolist()
            for entry, (frames, channels), rate in zip(entries, shapes, rates, strict=True):
                want = stored_samples(self.format, entry)
                if channels != 1 or frames != want or rate != self.sample_rate:
                    raise FormatError(
                        f"{self._item_name(entry)}: {rate:g} Hz, {channels} channel(s), "
                        f"{frames} samples; the folder promises {self.sample_rate} Hz mono, "
                        f"{want} samples"
                    )
        if self.format_name == "mel":
            want_dtype = np.dtype(self.format.get("mel_dtype", "float32"))
            config = self.format["mel"]
            for entry, shape in zip(entries, out["mel_shape"].tolist(), strict=True):
                frames = stored_samples(self.format, entry) // int(config["hop_length"]) + 1
                found = _TORCH_TO_NUMPY.get(out["mel"].dtype)
                if found != want_dtype or tuple(shape) != (int(config["n_mels"]), frames):
                    raise FormatError(
                        f"{self.folder / entry['mel_filepath']}: {found} {tuple(shape)}, "
                        f"format.json promises {want_dtype} {(int(config['n_mels']), frames)}"
                    )

    def _item_name(self, entry: dict) -> str:
        if "audio_filepath" in entry:
            return str(self.folder / entry["audio_filepath"])
        if "shard" in entry:
            return f"{self.folder / entry['shard']}:{entry['key']}"
        return f"{self.folder}:{entry['key']}"

    def _stored_mel(self, stored: torch.Tensor, entries: list, frames: torch.Tensor):
        """Stored mel (float16, or uint8 with each item's range) to float32, exactly as
        :func:`~loaders.mel_storage.from_storage` does, zero past each item's frames."""
        if stored.dtype == torch.float32:
            return stored
        rows = stored.cpu().numpy()
        mel = np.zeros(rows.shape, dtype=np.float32)
        for row, (entry, n) in enumerate(zip(entries, frames.tolist(), strict=True)):
            mel[row, :, :n] = from_storage(rows[row, :, :n], entry)
        return torch.from_numpy(mel).to(stored.device)


dali_loader = DaliLoader
"""The name the loaders export: ``dali_loader(path, batch_size, ...)`` builds a
:class:`DaliLoader`."""

_TORCH_TO_NUMPY = {
    torch.float32: np.dtype("float32"),
    torch.float16: np.dtype("float16"),
    torch.uint8: np.dtype("uint8"),
}


def log_mel(audio, config: dict):
    """DALI stages computing :class:`~loaders.mel.LogMel` of int16 ``audio`` ``[T]``:
    the same periodic Hann window, reflect-padded centred frames, power spectrum, HTK
    mel filters without normalisation, floor and log."""
    n_fft, hop = int(config["n_fft"]), int(config["hop_length"])
    rate = float(config["sample_rate"])
    f_max = config.get("f_max")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # torch.hann_window
    samples = fn.cast(audio, dtype=types.FLOAT) * (1.0 / 32768.0)  # exact: a power of two
    power = fn.spectrogram(
        samples,
        nfft=n_fft,
        window_length=n_fft,
        window_step=hop,
        window_fn=window.astype(np.float32).tolist(),
        center_windows=True,
        reflect_padding=True,
        power=2,
        layout="ft",
    )
    mel = fn.mel_filter_bank(
        power,
        sample_rate=rate,
        nfilter=int(config["n_mels"]),
        freq_low=float(config.get("f_min", 0.0)),
        freq_high=float(rate / 2 if f_max is None else f_max),
        normalize=False,
        mel_formula="htk",
    )
    multiplier = 10.0 if config.get("log", "natural") == "db" else _LN10  # 10 log10, or ln
    return fn.to_decibels(
        mel, multiplier=multiplier, reference=1.0, cutoff_db=multiplier * math.log10(_LOG_FLOOR)
    )


def _indices(labels: torch.Tensor) -> list[int]:
    return labels.reshape(-1).tolist()


def _padded_text(rows: torch.Tensor) -> list[str]:
    """Padded byte rows (a file name, a JSON member) back to their text."""
    return [bytes(row).rstrip(b"\0").decode("utf-8") for row in rows.cpu().numpy()]


def _segments(loader: DaliLoader) -> dict:
    """``segments/``: each item's WAV through ``fn.readers.file``; its label is its line."""
    files = [str(loader.folder / e["audio_filepath"]) for e in loader.entries]
    encoded, label = fn.readers.file(
        files=files, labels=list(range(len(files))), **loader._shard_args()
    )
    loader._index_of = _indices
    decoded = loader._decoded(encoded)
    return loader._audio_outputs(label, decoded.pop("audio"), decoded)


def _mel(loader: DaliLoader) -> dict:
    """``mel/``: each item's stored ``.npy`` through ``fn.readers.numpy``; the file it came
    from (its ``source_info``) names the item."""
    names = [e["mel_filepath"] for e in loader.entries]
    line = {name: i for i, name in enumerate(names)}
    loader._index_of = lambda rows: [line[name] for name in _padded_text(rows)]
    mel = fn.readers.numpy(file_root=str(loader.folder), files=names, **loader._shard_args())
    source = fn.pad(fn.get_property(mel, key="source_info"), fill_value=0)
    if loader.device is DaliDevice.GPU:
        mel = mel.gpu()
    return {"index": source, "mel_shape": mel.shape(), "mel": fn.pad(mel, fill_value=0)}


def _webdataset(loader: DaliLoader) -> dict:
    """``webdataset/``: DALI's ``fn.readers.webdataset`` over the shards and their ``.idx``
    files; each item's ``json`` member gives its key."""
    fmt = loader.format
    shards = [str(loader.folder / name) for name in fmt["shards"]]
    indexes = [shard.removesuffix(".tar") + ".idx" for shard in shards]
    missing = [index for index in indexes if not Path(index).exists()]
    index_args = {"index_paths": indexes}
    if missing:
        warnings.warn(
            f"{missing[0]}: missing ({len(missing)} shard indexes in all), so DALI indexes "
            "the shards itself at every start (slow); `wds2idx SHARD.tar` writes one, "
            "`prep shard` writes them with the shards",
            stacklevel=4,
        )
        index_args = {}
    args = loader._shard_args()
    if loader.shuffle:  # the shard order per epoch, and items through a buffer
        args.update(random_shuffle=True, initial_fill=1000, seed=loader.seed)
    encoded, meta = fn.readers.webdataset(
        paths=shards,
        ext=[fmt.get("codec", "wav"), "json"],
        missing_component_behavior="error",
        **index_args,
        **args,
    )
    line = {e["key"]: i for i, e in enumerate(loader.entries)}
    loader._index_of = lambda rows: [line[json.loads(text)["key"]] for text in _padded_text(rows)]
    decoded = loader._decoded(encoded)
    return loader._audio_outputs(fn.pad(meta, fill_value=0), decoded.pop("audio"), decoded)


class _EpochReads:
    """``fn.external_source``'s source: each ``iter()`` (DALI calls it once per epoch) is
    this rank's share of the next epoch in batches, read by our own reader."""

    def __init__(self, loader: DaliLoader) -> None:
        self.loader = loader
        self.epoch = -1

    def __iter__(self):
        self.epoch += 1
        loader = self.loader
        n = len(loader.entries)
        order = np.arange(n)
        if loader.shuffle:
            order = np.random.default_rng((loader.seed, self.epoch)).permutation(n)
        first, stop = rank_span(n, loader.rank, loader.world_size)
        return self._batches(order[first:stop].tolist())

    def _batches(self, mine: list[int]):
        dataset, size = self.loader.dataset, self.loader.batch_size
        for at in range(0, len(mine), size):
            indices = mine[at : at + size]
            if getattr(dataset, "fixed", True):  # one [B, T] block
                audio = dataset.read_batch(indices, mask=False)["audio"].numpy()
            else:  # items of their own lengths
                audio = [s["audio"].numpy() for s in dataset.__getitems__(indices)]
            yield audio, np.array(indices, dtype=np.int64)


def _external(loader: DaliLoader) -> dict:
    """``memmap/``, ``hdf5/``: our reader's batch reads through ``fn.external_source``."""
    audio, index = fn.external_source(
        source=_EpochReads(loader),
        num_outputs=2,
        batch=True,
        cycle="raise",
        dtype=[types.INT16, types.INT64],
    )
    loader._index_of = _indices
    return loader._audio_outputs(index, audio, {})


_SOURCES = {
    "segments": _segments,
    "mel": _mel,
    "webdataset": _webdataset,
    "memmap": _external,
    "hdf5": _external,
}
