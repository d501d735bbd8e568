"""Options of ``prep shard``: what each format and the mel need, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loaders.mel_storage import FBANK_DEFAULTS, FBANK_WINDOWS, FEATURES, MEL_DTYPES
from prep.errors import UsageError
from prep.parallel import check_backend
from prep.segmenting import LAST_POLICIES, min_samples
from prep.writers import get_writer, writer_names

TEXT_DROPPED = "segments cut from longer transcribed files; no word timings"


FORMAT_VERSION = 1


LOG_SCALES = ("natural", "db")  # as loaders.mel.LogMel
MEL_DEFAULTS = {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80,
                "f_min": 0.0, "f_max": 8000.0, "log": "natural"}  # fmt: skip


def empty_mel_bands(mel: dict) -> bool:
    """Whether torchaudio's HTK mel filterbank of these settings has an all-zero filter
    (its own warning): such a band is a constant row, not a feature."""
    n_freqs = mel["n_fft"] // 2 + 1
    freqs = np.linspace(0, mel["sample_rate"] // 2, n_freqs)
    lo, hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (mel["f_min"], mel["f_max"]))
    points = 700.0 * (10 ** (np.linspace(lo, hi, mel["n_mels"] + 2) / 2595.0) - 1.0)
    widths = np.diff(points)
    slopes = points[None, :] - freqs[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        down = -slopes[:, :-2] / widths[:-1]
        up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    return bool((np.nan_to_num(bank).max(axis=0) == 0).any())


@dataclass(frozen=True)
class ShardOptions:
    formats: tuple[str, ...] = ("segments",)
    sample_rate: int = 16000
    segment: int | None = None
    hop: int | None = None
    last: str = "pad"
    min_last: float = 0.0
    mel: dict = field(default_factory=dict)
    mel_dtype: str = "float32"
    features: str = "mel"
    fbank: dict = field(default_factory=dict)
    shard_size: int | None = None
    shard_bytes: int | None = None
    shuffle_seed: int = 0
    codec: str = "wav"
    hdf5_compression: str = "none"
    hf_split: str = "train"
    nemo_num_shards: int | None = None
    nemo_world_size: int = 1
    jobs: int = 0
    overwrite: bool = False
    backend: str = "local"
    scheduler: str | None = None

    @property
    def fixed_length(self) -> bool:
        return self.segment is not None and self.last in ("pad", "drop")

    @property
    def wants_mel(self) -> bool:
        """Whether a chosen format computes mel (then every format that carries it has it)."""
        return any(get_writer(name).computes_mel for name in self.formats)

    @property
    def feature_config(self) -> dict:
        """The settings of the features a run computes (``--features``), as format.json
        records them under ``mel``: the mel settings as given, or fbank's in full."""
        if self.features == "fbank":
            return {**FBANK_DEFAULTS, "sample_rate": self.sample_rate, **self.fbank}
        return dict(self.mel)

    def validate(self) -> None:
        """Every option alone and together, before any work; library callers included.
        Each registered format's writer checks its own options, chosen or not."""
        names = writer_names()
        unknown = [f for f in self.formats if f not in names]
        if unknown or not self.formats:
            raise UsageError(
                f"unknown --format {','.join(unknown)!r} (choose from {', '.join(names)})"
            )
        if not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"--sr {self.sample_rate} is not a usable sample rate (1000-384000)")
        if self.last not in LAST_POLICIES:
            raise UsageError(f"--last must be one of {', '.join(LAST_POLICIES)}")
        if not 0.0 <= self.min_last <= 1.0:
            raise UsageError("--min-last is a fraction of a segment, between 0 and 1")
        if self.hop is not None and self.segment is None:
            raise UsageError("--hop needs --segment")
        for name in ("segment", "hop"):
            value = getattr(self, name)
            if value is not None and value < min_samples(self.sample_rate):
                raise UsageError(f"--{name} of {value} samples is shorter than 10 ms")
        for name in self.formats:
            if get_writer(name).needs_fixed_length and not self.fixed_length:
                raise UsageError(
                    f"{name} needs fixed-length items: --segment with --last pad or drop"
                )
        for name in names:
            get_writer(name).validate(self)
        if self.mel_dtype not in MEL_DTYPES:
            raise UsageError(f"--mel-dtype must be one of {', '.join(MEL_DTYPES)}")
        if self.features not in FEATURES:
            raise UsageError(f"--features must be one of {', '.join(FEATURES)}")
        if self.features == "fbank":
            self._validate_fbank()
        elif self.wants_mel or self.mel:
            self._validate_mel()
        check_backend(self.backend, self.scheduler)
        if self.jobs < 0:
            raise UsageError("--jobs must be 0 (all cores) or more")

    def _validate_mel(self) -> None:
        mel = {**MEL_DEFAULTS, **self.mel}
        if mel["sample_rate"] != self.sample_rate:
            raise UsageError("the mel sample rate must be --sr")
        for name in ("n_mels", "n_fft", "hop_length"):
            if not isinstance(mel[name], int) or mel[name] < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be a whole number, 1 or more")
        nyquist = self.sample_rate / 2
        f_min, f_max = mel["f_min"], mel["f_max"]
        if not 0 <= f_min < f_max <= nyquist:
            raise UsageError(
                f"mel band --f-min {f_min:g} --f-max {f_max:g} Hz: need 0 <= f-min < f-max <= "
                f"{nyquist:g} (half of --sr {self.sample_rate})"
            )
        if mel["log"] not in LOG_SCALES:
            raise UsageError(f"--log must be one of {', '.join(LOG_SCALES)}")
        if empty_mel_bands(mel):
            raise UsageError(
                f"--n-mels {mel['n_mels']} over {f_min:g}-{f_max:g} Hz with --n-fft "
                f"{mel['n_fft']} leaves mel bands with no FFT bin in them (rows of nothing): "
                "lower --n-mels or raise --n-fft"
            )
        if self.wants_mel and self.segment is not None and self.segment <= mel["n_fft"] // 2:
            raise UsageError(
                f"--segment of {self.segment} samples is too short for a mel with --n-fft "
                f"{mel['n_fft']} (needs more than {mel['n_fft'] // 2})"
            )

    def _validate_fbank(self) -> None:
        fbank = self.feature_config
        if fbank["sample_rate"] != self.sample_rate:
            raise UsageError("the fbank sample rate must be --sr")
        for name, option in (("n_mels", "bins"), ("win_length", "frame-length"),
                             ("hop_length", "frame-shift")):  # fmt: skip
            if not isinstance(fbank[name], int) or fbank[name] < 1:
                raise UsageError(f"--fbank-{option} must come to 1 sample or more")
        nyquist = self.sample_rate / 2
        top = fbank["f_max"] if fbank["f_max"] > 0 else nyquist + fbank["f_max"]
        if not 0 <= fbank["f_min"] < top <= nyquist:
            raise UsageError(
                f"fbank band --fbank-low-freq {fbank['f_min']:g} --fbank-high-freq "
                f"{fbank['f_max']:g} Hz: need 0 <= low < high <= {nyquist:g} (0 or below "
                "0: Nyquist minus that)"
            )
        if fbank["dither"] < 0:
            raise UsageError("--fbank-dither must be 0 or more")
        if fbank["window"] not in FBANK_WINDOWS:
            raise UsageError(f"--fbank-window must be one of {', '.join(FBANK_WINDOWS)}")
        if self.wants_mel and self.segment is not None and self.segment < fbank["win_length"]:
            raise UsageError(
                f"--segment of {self.segment} samples is shorter than one fbank frame "
                f"({fbank['win_length']} samples)"
            )

    def format_params(self, name: str) -> dict:
        """What a format's files depend on: stored in its format.json, compared on rerun."""
        params: dict = {
            "sample_rate": self.sample_rate,
            "segment_samples": self.segment,
            "hop_samples": (self.hop or self.segment) if self.segment else None,
            "last": self.last,
            "min_last": self.min_last,
        }
        writer = get_writer(name)
        if self.wants_mel and writer.carries_mel:
            if self.features != "mel":  # absent for mel: those folders stay as they were
                params["features"] = self.features
            params["mel"] = self.feature_config
            params["mel_dtype"] = self.mel_dtype
        params.update(writer.params(self))
        return params
