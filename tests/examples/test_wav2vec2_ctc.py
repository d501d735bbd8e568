"""examples/wav2vec2_ctc.py: a tiny random Wav2Vec2ForCTC trained from our loaders.

The set: speech-like mp3 of 1-9 s with transcripts, one 14 s file that ``--max-duration``
drops at convert time, and an ogg without a transcript (skipped by the script).
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest
import torch
from helpers import REPO, make_file
from torch.utils.data import DataLoader, Subset

from loaders import DurationBucketSampler, batch_loader, open_dataset, pad_collate
from loaders.ctc import CharVocab, normalize_padded
from prep.convert import ConvertOptions, convert

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SECONDS = [1.0, 9.0, 1.5, 6.0, 2.0, 7.5, 2.5, 4.0, 3.0, 8.0, 3.5, 5.0, 1.2, 8.5, 2.2, 6.5]
MAX_DURATION = 10.0
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "sings"]


def _script():
    spec = importlib.util.spec_from_file_location(
        "wav2vec2_ctc", REPO / "examples" / "wav2vec2_ctc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wav16(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctc")
    rng = np.random.default_rng(0)
    for i, seconds in enumerate([*SECONDS, 14.0]):
        path = make_file(root / "src" / f"utt{i:02d}.mp3", seconds=seconds, sr=22050, channels=1)
        words = rng.choice(WORDS, size=int(seconds * 2) + 1)
        path.with_suffix(".txt").write_text(" ".join(words) + "\n")
    make_file(root / "src" / "music.ogg", seconds=3.0)
    options = ConvertOptions(jobs=1, max_duration=MAX_DURATION)
    summary = convert(root / "src", root / "wav16", options)
    assert summary.converted == len(SECONDS) + 1 and summary.skipped == 1
    return root / "wav16"


def test_our_normalisation_is_the_feature_extractors(wav16):
    from transformers import Wav2Vec2FeatureExtractor

    items = Subset(open_dataset(wav16), range(len(SECONDS)))
    batch = next(iter(batch_loader(items, batch_size=5)))
    assert len(set(batch["lengths"].tolist())) == 5  # real padding in every row but one
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    rows = [a[:n].numpy() for a, n in zip(batch["audio"], batch["lengths"], strict=True)]
    ref = extractor(rows, sampling_rate=16000, padding=True, return_tensors="pt")
    ours = normalize_padded(batch["audio"], batch["lengths"])
    torch.testing.assert_close(ours, ref["input_values"], atol=1e-5, rtol=0)
    assert torch.equal(batch["attention_mask"].long(), ref["attention_mask"].long())
    as_int16 = next(
        iter(batch_loader(Subset(open_dataset(wav16, dtype="int16"), items.indices), 5))
    )
    assert torch.equal(normalize_padded(as_int16["audio"], as_int16["lengths"]), ours)


def test_the_loss_is_finite_and_falls_on_one_batch_seeded(wav16):
    losses = _script().train(str(wav16), steps=6, same_batch=True, log=lambda line: None)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    again = _script().train(str(wav16), steps=2, same_batch=True, log=lambda line: None)
    assert again == losses[:2]  # seeded: the same run twice


def test_the_script_skips_items_without_text_and_trains_from_bucketed_batches(wav16, capsys):
    _script().main([str(wav16), "--steps", "3", "--max-batch-seconds", "12"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"skipping 1 of {len(SECONDS) + 1} items without a transcript"
    losses = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("step ")]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


def _padding_share(loader) -> tuple[float, int, int]:
    """(padded share of the batch tensors, batches, widest batch in samples)."""
    total = padded = count = widest = 0
    for batch in loader:
        total += batch["audio"].numel()
        padded += batch["audio"].numel() - int(batch["lengths"].sum())
        count += 1
        widest = max(widest, batch["audio"].shape[-1])
    return padded / total, count, widest


def test_duration_buckets_pad_less_than_random_batches(wav16):
    dataset = open_dataset(wav16, dtype="int16")
    seconds = [e["num_samples"] / e["sample_rate"] for e in dataset.entries]
    assert max(seconds) <= MAX_DURATION  # the 14 s file was dropped at convert time
    random_share, random_count, widest = _padding_share(
        batch_loader(dataset, batch_size=4, shuffle=True, seed=0)
    )
    sampler = DurationBucketSampler(seconds, max_batch_seconds=4 * np.mean(seconds), seed=0)
    bucket_share, bucket_count, bucket_widest = _padding_share(
        DataLoader(dataset, batch_sampler=sampler, collate_fn=pad_collate)
    )
    print(
        f"\npadding share: random batches of 4 {random_share:.1%} ({random_count} batches); "
        f"duration buckets {bucket_share:.1%} ({bucket_count} batches)"
    )
    assert bucket_share < random_share / 2
    assert max(widest, bucket_widest) <= MAX_DURATION * 16000


def test_labels_come_from_the_manifest_vocabulary(wav16):
    entries = open_dataset(wav16).entries
    vocab = CharVocab.from_entries(entries)
    texts = [e["text"] for e in entries if e.get("text")][:3]
    labels = vocab.labels(texts)
    for row, text in zip(labels, texts, strict=True):
        ids = row[row != -100].tolist()
        assert len(ids) == len(" ".join(text.split())) and vocab.decode(ids) == " ".join(
            text.split()
        )
        assert (row[len(ids) :] == -100).all()
    assert vocab.tokens[:2] == ("<pad>", "<unk>") and vocab.as_dict()["|"] > 1
