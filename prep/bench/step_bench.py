"""A real consumer: training steps fed by each loader, and the share of time spent
waiting for data, as DS-Analyzer measures it: stall % = 1 - ideal / actual, where ideal is
the step time with the batch already in memory on the device.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from loaders import LogMel, to_device


class LinearAutoencoder(nn.Module):
    """About 2.1 million parameters over a 5 s segment at 16 kHz (80,000 -> 13 -> 80,000):
    small enough that the model is not the bottleneck, as in the DataLoader benchmark."""

    def __init__(self, samples: int, bottleneck: int = 13) -> None:
        super().__init__()
        self.encode = nn.Linear(samples, bottleneck)
        self.decode = nn.Linear(bottleneck, samples)

    def loss(self, batch: dict) -> torch.Tensor:
        audio = batch["audio"]
        width = self.encode.in_features
        if audio.shape[-1] != width:  # clips shorter than a segment come in narrower batches
            audio = nn.functional.pad(audio, (0, max(0, width - audio.shape[-1])))[:, :width]
        return nn.functional.mse_loss(self.decode(torch.relu(self.encode(audio))), audio)


class MelClassifier(nn.Module):
    """A small conv classifier on log-mel ``[B, n_mels, frames]`` with dummy labels."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, classes),
        )

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.net(batch["mel"][:, None])
        labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        return nn.functional.cross_entropy(logits, labels)


class MelInWorkers(Dataset):
    """CPU mel computed per item where the item is loaded (in the DataLoader workers)."""

    def __init__(self, dataset: Dataset, mel: dict) -> None:
        self.dataset, self.mel_config = dataset, mel
        self._module: LogMel | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        if self._module is None:
            torch.set_num_threads(1)
            self._module = LogMel(**self.mel_config)
        sample = dict(self.dataset[index])
        with torch.inference_mode():
            sample["mel"] = self._module(sample.pop("audio"))
        return sample


@dataclass
class StepRow:
    consumer: str
    loader: str
    ideal_ms: float
    actual_ms: float

    @property
    def stall(self) -> float | None:
        """The share of the fed step spent waiting for data; None when the fed step was
        not slower than the ideal one, where the difference is timing noise, not 0%."""
        if self.actual_ms <= self.ideal_ms:
            return None
        return 1.0 - self.ideal_ms / self.actual_ms

    @property
    def stall_text(self) -> str:
        """The stall in words: never a bare 0% (a stall below 1% keeps a decimal)."""
        stall = self.stall
        if stall is None:
            return "within noise (ideal >= actual)"
        percent = 100 * stall
        if percent >= 1:
            return f"{percent:.0f}%"
        return f"{percent:.1f}%" if percent >= 0.1 else "under 0.1%"


def _prepare(batch: dict, device: str, mel: LogMel | None) -> dict:
    batch = to_device(batch, device)
    if mel is not None and "mel" not in batch:
        batch["mel"] = mel(batch["audio"])  # mel on the device, after batching
    return batch


def _train(model: nn.Module, optimizer, batch: dict) -> None:
    optimizer.zero_grad(set_to_none=True)
    model.loss(batch).backward()
    optimizer.step()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


ROUNDS = 3
"""Ideal and fed steps alternate in this many rounds, so a slow spell of a shared machine
hits both sides rather than one."""


def _timed_steps(train_one, steps: int, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        train_one()
    _sync(device)
    return time.perf_counter() - started


class _Batches:
    """Batches from ``loader`` without end: a new epoch where one runs out."""

    def __init__(self, loader: Iterable) -> None:
        self.loader, self.batches = loader, iter(loader)

    def next(self) -> dict:
        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        return batch


def step_times_ms(
    model, optimizer, loader: Iterable, device: str, mel: LogMel | None, steps: int
) -> tuple[float, float]:
    """(ideal, fed) step time in ms. Ideal: the step with the loader's first batch (and any
    mel the step computes) already in device memory. Fed: each step takes the loader's next
    batch, over as many epochs as needed. Both warm up for two steps, then alternate in
    :data:`ROUNDS` rounds of about ``steps / ROUNDS`` steps each."""
    batches = _Batches(loader)
    ready = _prepare(batches.next(), device, mel)
    # a batch from shared slots is a view the loader refills: keep a copy of our own
    ready = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in ready.items()}

    def ideal() -> None:
        _train(model, optimizer, ready)

    def fed() -> None:
        _train(model, optimizer, _prepare(batches.next(), device, mel))

    for _ in range(2):
        ideal()
        fed()
    rounds = max(1, min(ROUNDS, steps))
    per_round = [steps // rounds + (i < steps % rounds) for i in range(rounds)]
    ideal_s = fed_s = 0.0
    for n in per_round:
        ideal_s += _timed_steps(ideal, n, device)
        fed_s += _timed_steps(fed, n, device)
    return ideal_s / steps * 1000, fed_s / steps * 1000


def measure_steps(
    consumer: str,
    make_model,
    loaders: dict[str, Iterable],
    device: str,
    steps: int,
    mel: dict | None = None,
    mel_after_batching: set[str] = frozenset(),
) -> list[StepRow]:
    """One row per loader, each with its own model and its own ideal step."""
    rows = []
    mel_module = LogMel(**mel).to(device) if mel else None
    for name, loader in loaders.items():
        torch.manual_seed(0)
        model = make_model().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        step_mel = mel_module if name in mel_after_batching else None
        ideal, actual = step_times_ms(model, optimizer, loader, device, step_mel, steps)
        rows.append(StepRow(consumer, name, ideal, actual))
    return rows


def step_table(rows: list[StepRow]) -> str:
    lines = [
        "| consumer | fed by | ideal step | actual step | data stall |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.consumer} | {r.loader} | {r.ideal_ms:.1f} ms | {r.actual_ms:.1f} ms "
            f"| {r.stall_text} |"
        )
    return "\n".join(lines)
