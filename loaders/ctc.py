"""What a CTC model (wav2vec2, XLSR) needs from a padded batch, in torch alone.

:func:`normalize_padded` is what ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does to
each utterance, done on the padded batch (on the device, if it is there) instead of on a
list of arrays; :class:`CharVocab` is a character vocabulary built from the transcripts
of a manifest, in Hugging Face's ``Wav2Vec2CTCTokenizer`` layout (``<pad>`` is the CTC
blank at 0, ``|`` stands for the space between words), and turns a batch's ``text`` into
label ids padded with -100, which the CTC loss ignores. No ``transformers`` import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

NORM_EPSILON = 1e-7
"""Added to the variance before the square root, as the feature extractor does (silence
stays finite)."""
IGNORE_INDEX = -100
"""The label value the loss skips: padding after each transcript."""


def normalize_padded(
    audio: torch.Tensor, lengths: torch.Tensor | Sequence[int], padding_value: float = 0.0
) -> torch.Tensor:
    """``[B, T]`` float32, each row at zero mean and unit variance over its first
    ``lengths[i]`` samples; the padding after them set to ``padding_value``.

    The statistics are computed in float64 so a long utterance loses no precision; any
    dtype comes in (int16 audio is scaled to [-1, 1) first; the scale cancels anyway).
    """
    if audio.dtype == torch.int16:
        audio = audio.float() / 32768
    x = audio.to(torch.float64)
    lengths = torch.as_tensor(lengths, device=x.device)
    real = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
    count = lengths.clamp(min=1).to(torch.float64)[:, None]
    mean = (x * real).sum(dim=-1, keepdim=True) / count
    var = (((x - mean) * real) ** 2).sum(dim=-1, keepdim=True) / count
    normed = (x - mean) / torch.sqrt(var + NORM_EPSILON)
    return normed.masked_fill(~real, padding_value).to(torch.float32)


@dataclass(frozen=True)
class CharVocab:
    """Characters to ids: ``<pad>`` (the CTC blank) 0, ``<unk>`` 1, then every character
    the transcripts use, sorted, with ``|`` for the space."""

    tokens: tuple[str, ...]

    PAD = "<pad>"
    UNK = "<unk>"
    SPACE = "|"

    @classmethod
    def from_texts(cls, texts: Iterable[str | None]) -> CharVocab:
        """From transcripts (None, for items without one, is passed over)."""
        chars = {c for text in texts if text for c in cls._spelled(text)}
        return cls((cls.PAD, cls.UNK, *sorted(chars - {cls.PAD, cls.UNK})))

    @classmethod
    def from_entries(cls, entries: Iterable[dict]) -> CharVocab:
        """From the ``text`` of manifest entries (a dataset's ``entries``)."""
        return cls.from_texts(entry.get("text") for entry in entries)

    @classmethod
    def _spelled(cls, text: str) -> str:
        """The text as the model spells it: words split by single ``|``."""
        return cls.SPACE.join(text.split())

    @property
    def pad_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def as_dict(self) -> dict[str, int]:
        """``vocab.json`` for a ``Wav2Vec2CTCTokenizer``."""
        return {token: i for i, token in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        """Label ids; a character the vocabulary lacks is ``<unk>``."""
        ids = self._ids
        return [ids.get(c, 1) for c in self._spelled(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text, blanks and -100 left out (no CTC collapsing)."""
        return "".join(self.tokens[i] for i in ids if i > 0).replace(self.SPACE, " ")

    def labels(self, texts: Sequence[str]) -> torch.Tensor:
        """``[B, longest]`` int64 label ids, each row padded with -100."""
        encoded = [self.encode(t) for t in texts]
        out = torch.full((len(encoded), max(map(len, encoded), default=0)), IGNORE_INDEX)
        for row, ids in zip(out, encoded, strict=True):
            row[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    @cached_property
    def _ids(self) -> dict[str, int]:
        return self.as_dict()
