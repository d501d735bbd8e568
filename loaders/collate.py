"""Batching samples: pad to the longest item, with the mask wav2vec2-style models take."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from loaders.sample import to_float


def padding_mask(
    lengths: list[int], width: int, allocate: Callable[..., torch.Tensor] | None = None
) -> torch.Tensor:
    """``[B, width]`` bool, True on real samples.

    With no padded row it is one all-True row broadcast to ``[B, width]`` (a read-only
    view, no allocation); otherwise all True with each short row cleared. Either way it
    costs less than comparing every position, which cost more than reading the audio.
    ``allocate(name, shape, dtype)`` places a full mask (a reused shared slot costs no
    page faults, a fresh tensor does).
    """
    if all(length >= width for length in lengths):
        return torch.ones(1, width, dtype=torch.bool).expand(len(lengths), width)
    shape = (len(lengths), width)
    if allocate is None:
        mask = torch.ones(shape, dtype=torch.bool)
    else:
        mask = allocate("attention_mask", shape, torch.bool).fill_(True)
    for row, length in enumerate(lengths):
        if length < width:
            mask[row, length:] = False
    return mask


def _pad_stack(
    tensors: list[torch.Tensor], name: str, allocate: Callable[..., torch.Tensor] | None = None
) -> torch.Tensor:
    """Stack along a new first axis, zero-padding the last one to the longest item;
    straight into ``allocate(name, shape, dtype)``'s tensor when given (one copy, not two)."""
    longest = max(t.shape[-1] for t in tensors)
    if allocate is None:
        if all(t.shape[-1] == longest for t in tensors):
            return torch.stack(tensors)  # fixed-length segments: no padding
        return torch.stack([F.pad(t, (0, longest - t.shape[-1])) for t in tensors])
    first = tensors[0]
    out = allocate(name, (len(tensors), *first.shape[:-1], longest), first.dtype)
    for row, tensor in zip(out, tensors, strict=True):
        width = tensor.shape[-1]
        row[..., :width].copy_(tensor)
        if width < longest:
            row[..., width:].zero_()
    return out


def pad_collate(
    samples: list[dict],
    allocate: Callable[..., torch.Tensor] | None = None,
    mask: bool = True,
) -> dict:
    """A list of samples to one batch dict.

    ``key`` (list), ``audio`` ``[B, T]`` zero-padded to the longest item (dtype kept: int16
    stays int16 for :func:`to_device`), ``lengths`` (real samples), ``attention_mask``
    ``[B, T]`` bool (True on real samples; bool, not int64, since an int64 mask is four
    times the bytes of the int16 audio it describes), ``mel`` ``[B, n_mels, frames]`` and
    ``mel_lengths`` when items carry mel, ``text`` / ``label`` lists when present.

    ``allocate(name, shape, dtype)`` gives the large tensors their destination (a shared
    slot, see :mod:`loaders.shared_batches`); ``mask=False`` leaves the mask to the caller.
    """
    batch: dict = {"key": [s["key"] for s in samples], "sample_rate": samples[0]["sample_rate"]}
    lengths = [s["length"] for s in samples]
    batch["lengths"] = torch.tensor(lengths, dtype=torch.long)
    if "audio" in samples[0]:
        audio = _pad_stack([s["audio"] for s in samples], "audio", allocate)
        batch["audio"] = audio
        if mask:
            batch["attention_mask"] = padding_mask(lengths, audio.shape[-1], allocate)
    if "mel" in samples[0]:
        batch["mel"] = _pad_stack([s["mel"] for s in samples], "mel", allocate)
        batch["mel_lengths"] = torch.tensor([s["mel"].shape[-1] for s in samples])
    for name in ("text", "label"):
        if name in samples[0]:
            batch[name] = [s.get(name) for s in samples]
    return batch


def to_device(batch: dict, device: str | torch.device, non_blocking: bool = True) -> dict:
    """Move a batch's tensors to ``device``; int16 audio becomes float32 there.

    The int16 fast path's device-side step: the result equals the float32 path's batch.
    """
    moved = {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }
    if "audio" in moved:
        moved["audio"] = to_float(moved["audio"])
    return moved
