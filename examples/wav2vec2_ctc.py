"""Fine-tune a wav2vec2 / XLSR CTC model on a ``prep convert`` folder with transcripts.

A tiny, randomly initialised ``Wav2Vec2ForCTC`` stands for the pretrained one you would
load (``Wav2Vec2ForCTC.from_pretrained("facebook/wav2vec2-xls-r-300m", vocab_size=...,
pad_token_id=0)``); nothing is downloaded. Items without a transcript are skipped.

    python examples/wav2vec2_ctc.py wav16/ --steps 20
    python examples/wav2vec2_ctc.py wav16/ --steps 20 --max-batch-seconds 60  # bucketed

Keep padding low: drop the longest files at convert time (``prep convert --max-duration
20``) and batch by duration (``--max-batch-seconds``), so each batch pads to a length close
to its own items' rather than to the longest file of the set.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a random model: nothing to fetch

import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from loaders import DurationBucketSampler, batch_loader, open_dataset, pad_collate  # noqa: E402
from loaders.ctc import CharVocab, normalize_padded  # noqa: E402


def tiny_model(vocab: CharVocab):
    """An XLSR-shaped model (layer-norm feature encoder, so it takes ``attention_mask``)
    small enough for a CPU: 50 frames a second, like the real one."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(
        vocab_size=len(vocab), pad_token_id=vocab.pad_id, ctc_loss_reduction="mean",
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0,
    )  # fmt: skip
    return Wav2Vec2ForCTC(config)


def transcribed(folder: str, log: Callable[[str], None] = print) -> Subset:
    """The converted folder's items that have a transcript."""
    dataset = open_dataset(folder)
    keep = [i for i, entry in enumerate(dataset.entries) if entry.get("text")]
    if len(keep) < len(dataset):
        log(f"skipping {len(dataset) - len(keep)} of {len(dataset)} items without a transcript")
    if not keep:
        raise SystemExit(f"error: {folder}: no item has a transcript (stem.txt beside the audio)")
    return Subset(dataset, keep)


def batches(
    items: Subset, batch_size: int, max_batch_seconds: float | None, seed: int
) -> Iterator[dict]:
    """Padded batches forever, epoch after epoch: ``batch_size`` items in a seeded random
    order, or (with ``max_batch_seconds``) items of similar length up to that much audio."""
    if max_batch_seconds is None:
        loader = batch_loader(items, batch_size, shuffle=True, seed=seed)
    else:
        entries = [items.dataset.entries[i] for i in items.indices]
        seconds = [e["num_samples"] / e["sample_rate"] for e in entries]
        sampler = DurationBucketSampler(seconds, max_batch_seconds, seed=seed)
        loader = DataLoader(items, batch_sampler=sampler, collate_fn=pad_collate)
    for epoch in itertools.count():
        if max_batch_seconds is not None:
            sampler.set_epoch(epoch)
        yield from loader


def train(
    folder: str,
    steps: int,
    batch_size: int = 4,
    max_batch_seconds: float | None = None,
    same_batch: bool = False,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[float]:
    """Train for ``steps`` batches; return each step's loss. ``same_batch``: the first
    batch every step (a loss that cannot fall on one batch is a broken pipeline)."""
    torch.manual_seed(seed)
    items = transcribed(folder, log)
    vocab = CharVocab.from_entries(items.dataset.entries[i] for i in items.indices)
    model = tiny_model(vocab).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    stream = batches(items, batch_size, max_batch_seconds, seed)
    first = next(stream)
    losses, padded, total = [], 0, 0
    for step in range(steps):
        batch = first if same_batch or step == 0 else next(stream)
        out = model(
            input_values=normalize_padded(batch["audio"], batch["lengths"]),
            attention_mask=batch["attention_mask"].long(),
            labels=vocab.labels(batch["text"]),
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
        total += batch["audio"].numel()
        padded += batch["audio"].numel() - int(batch["lengths"].sum())
        log(f"step {step + 1}/{steps}: {len(batch['key'])} items, loss {losses[-1]:.3f}")
    log(f"vocabulary {len(vocab)} characters; padding {padded / max(total, 1):.1%} of the audio")
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a prep convert output folder (manifest.jsonl)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-batch-seconds", type=float, default=None,
                        help="batch by duration (DurationBucketSampler) instead")  # fmt: skip
    parser.add_argument("--same-batch", action="store_true", help="overfit the first batch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train(args.folder, args.steps, args.batch_size, args.max_batch_seconds,
          args.same_batch, args.lr, args.seed)  # fmt: skip


if __name__ == "__main__":
    main()
