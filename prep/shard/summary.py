"""The summary line of a ``prep shard`` run: what was written, counted."""

from __future__ import annotations

from dataclasses import dataclass, field

from manifests import Entry
from prep.progress import audio_span
from prep.shard.options import TEXT_DROPPED


@dataclass
class ShardSummary:
    sources: int = 0
    items: int = 0
    audio_seconds: float = 0.0
    failed: int = 0
    done_formats: list[str] = field(default_factory=list)
    written_formats: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    errors: list[Entry] = field(default_factory=list)

    text_dropped: int = 0

    def line(self) -> str:
        if self.written_formats:
            parts = [
                f"{count_of(self.sources, 'source')} -> {count_of(self.items, 'item')} "
                f"({audio_span(self.audio_seconds, exact=True)})"
            ]
        elif self.done_formats:
            parts = [f"{count_of(self.sources, 'source')}; nothing to write"]
        else:
            parts = [f"{count_of(self.sources, 'source')} -> no item; no format written"]
        parts += [f"{name}: {text}" for name, text in self.written_formats.items()]
        if self.text_dropped:
            parts.append(f"text left off {count_of(self.text_dropped, 'item')} ({TEXT_DROPPED})")
        if self.done_formats:
            parts.append(f"already complete: {', '.join(self.done_formats)}")
        parts.append(f"failed {self.failed}; {self.wall_seconds:.1f} s wall")
        return "; ".join(parts)


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
