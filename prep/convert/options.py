"""What ``prep convert`` is asked to make (:class:`ConvertOptions`), checked before any work,
and the duration filters applied to each file.
"""

from __future__ import annotations

from dataclasses import dataclass

from loaders.audio.dsp import CHANNEL_MODES, RESAMPLE_QUALITIES
from loaders.audio.registry import DECODERS
from prep.errors import UsageError
from prep.parallel import check_backend
from prep.parts import PART_SECONDS

TARGETS = {"wav16": ("WAV", ".wav"), "flac16": ("FLAC", ".flac")}
MIN_AUDIO_SECONDS = 0.010
"""Shorter files hold no usable audio (less than one 10 ms analysis frame): skipped."""


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that decides what a converted file contains, plus run settings."""

    to: str = "wav16"
    sample_rate: int = 16000
    channels: str = "mix"
    decoder: str = "auto"
    quality: str = "HQ"
    min_duration: float | None = None
    max_duration: float | None = None
    overwrite: bool = False
    jobs: int = 0
    extensions: tuple[str, ...] = ()
    backend: str = "local"
    scheduler: str | None = None
    part_seconds: float = PART_SECONDS
    """Input seconds per part of a long FLAC or WAV (:mod:`prep.parts`). No command-line
    option: the default suits every run; tests set a few seconds so short files are cut."""

    def output_params(self) -> dict:
        """The options an output depends on: a change of any of them redoes the file."""
        return {
            "to": self.to,
            "sr": self.sample_rate,
            "channels": self.channels,
            "decoder": self.decoder,
            "quality": self.quality,
        }

    def validate(self) -> None:
        if self.to not in TARGETS:
            raise UsageError(f"unknown --to {self.to!r} (choose from {', '.join(TARGETS)})")
        if not 1000 <= self.sample_rate <= 384000:
            raise UsageError(f"--sr {self.sample_rate} is not a usable sample rate (1000-384000)")
        if self.channels not in CHANNEL_MODES:
            raise UsageError(f"unknown --channels {self.channels!r}")
        if self.decoder not in DECODERS:
            raise UsageError(f"unknown --decoder {self.decoder!r}")
        if reason := DECODERS[self.decoder].unavailable():
            raise UsageError(reason)
        if self.quality not in RESAMPLE_QUALITIES:
            raise UsageError(f"unknown resampling quality {self.quality!r}")
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a non-negative number")
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration > self.max_duration
        ):
            raise UsageError("--min-duration is larger than --max-duration")
        if self.jobs < 0:
            raise UsageError("--jobs must be positive")
        if not self.part_seconds > 0:
            raise UsageError("part_seconds must be a positive number")
        check_backend(self.backend, self.scheduler)


def duration_filter(seconds: float, options: ConvertOptions) -> str | None:
    if seconds < MIN_AUDIO_SECONDS:
        minimum_ms = MIN_AUDIO_SECONDS * 1000
        return f"too short: {seconds * 1000:.1f} ms of audio (minimum {minimum_ms:.0f} ms)"
    if options.min_duration is not None and seconds < options.min_duration:
        return f"duration {seconds:.2f} s is below --min-duration {options.min_duration:g} s"
    if options.max_duration is not None and seconds > options.max_duration:
        return f"duration {seconds:.2f} s is above --max-duration {options.max_duration:g} s"
    return None
