"""loaders.ctc: per-utterance normalisation of a padded batch and a character vocabulary
(equality with Hugging Face's feature extractor: tests/examples/test_wav2vec2_ctc.py)."""

from __future__ import annotations

import torch
from helpers import modules_loaded_by

from loaders.ctc import CharVocab, normalize_padded


def test_loaders_ctc_imports_no_transformers():
    assert modules_loaded_by("import loaders.ctc", ("transformers",)) == []


def test_padding_neither_moves_the_statistics_nor_stays_unnormalised():
    real = torch.tensor([0.5, -0.25, 0.75, 0.0])
    batch = torch.stack([torch.cat([real, torch.full((4,), 9.0)]), torch.zeros(8)])
    out = normalize_padded(batch, [4, 8])
    expected = (real - real.mean()) / torch.sqrt(real.var(unbiased=False) + 1e-7)
    torch.testing.assert_close(out[0, :4], expected)
    assert torch.equal(out[0, 4:], torch.zeros(4))  # the 9.0 padding counted for nothing
    assert torch.equal(out[1], torch.zeros(8))  # silence stays finite
    assert out.dtype == torch.float32


def test_words_are_split_by_bars_and_unknown_characters_are_unk():
    vocab = CharVocab.from_texts(["ab  a", None, "b"])
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b", "|")
    assert vocab.encode("a b") == [2, 4, 3] and vocab.encode("a?") == [2, 1]
    assert vocab.labels(["a", "ab b"]).tolist() == [[2, -100, -100, -100], [2, 3, 4, 3]]
    assert vocab.decode([2, 0, 4, 3, -100]) == "a b"
