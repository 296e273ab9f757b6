"""Forward passes of the classifier: the joint ID + background pass of training, and sharded,
gathered evaluation passes (logits, features, ODIN)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bgresample import dist
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import CropFlip
from bgresample.errors import UserError
from bgresample.runtime.accel import Accel
from bgresample.scores import get_score


def joint_forward(
    net: nn.Module, x_id: torch.Tensor, x_bg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward pass over the ID and background batches together; split the logits."""
    if x_bg is None:
        return net(x_id), None
    logits = net(torch.cat([x_id, x_bg]))
    return logits[: len(x_id)], logits[len(x_id) :]


def projected_forward(
    net: nn.Module, x_id: torch.Tensor, x_bg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """:func:`joint_forward` of a net that returns ``(logits, embeddings)``
    (:class:`bgresample.losses.hopfield.ProjectedClassifier`): ID logits, background logits,
    ID embeddings, background embeddings (the background ones None without a background)."""
    if x_bg is None:
        logits, emb = net(x_id)
        return logits, None, emb, None
    logits, emb = net(torch.cat([x_id, x_bg]))
    n = len(x_id)
    return logits[:n], logits[n:], emb[:n], emb[n:]


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 3 averaged over the batch, in float32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float(), y)


def check_finite(loss: torch.Tensor, stage: str, step: int, last_checkpoint: Path | None) -> None:
    """Stop a stage on a NaN / inf loss, naming the step and the last good checkpoint."""
    if not torch.isfinite(loss):
        exists = last_checkpoint is not None and Path(last_checkpoint).is_file()
        where = str(last_checkpoint) if exists else "none yet"
        raise UserError(
            f"{stage}: loss became {loss.item()} at step {step}; last good checkpoint: {where}. "
            "Lower the learning rate (--set ...lr=) and resume or re-run."
        )


def unwrap(model: nn.Module) -> nn.Module:
    """The model under a DDP and/or torch.compile wrapper (``features``/``fc`` live there)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def map_sharded(
    images: ImageSource | LabeledImages,
    indices: torch.Tensor | None,
    batch_size: int,
    accel: Accel,
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    aug: CropFlip | None = None,
) -> tuple[torch.Tensor, ...]:
    """``fn`` over batches of the items at ``indices`` (all items by default), outputs
    concatenated on the CPU. Under torchrun each rank takes a contiguous share of the items and
    the shares are gathered in rank order, so every item is counted once. ``aug``: one crop and
    flip per item (in the order of ``indices``), applied to each item whatever rank takes it.
    """
    idx = torch.arange(len(images)) if indices is None else indices
    info = dist.info()
    shares = torch.tensor_split(idx, info.world_size) if info.enabled else (idx,)
    rank = info.rank if info.enabled else 0
    mine, first = shares[rank], sum(len(s) for s in shares[:rank])
    starts = range(0, len(mine), batch_size)
    keys = (mine[i : i + batch_size] for i in starts)
    ends = [min(i + batch_size, len(mine)) for i in starts]
    augs = [
        None if aug is None else aug.shard(slice(first + i, first + j))
        for i, j in zip(starts, ends, strict=True)
    ]
    outs = [
        fn(accel.ready(raw, a, images.normalized))
        for raw, a in zip(accel.batches(images, keys), augs, strict=True)
    ]
    local = tuple(torch.cat(parts) for parts in zip(*outs, strict=True)) if outs else None
    parts = [p for p in dist.gather_objects(local) if p is not None] if info.enabled else [local]
    if not parts or parts[0] is None:
        raise ValueError("no items to evaluate")
    return tuple(torch.cat(cols) for cols in zip(*parts, strict=True))


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: ImageSource | LabeledImages,
    accel: Accel,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (float32, CPU) of ``images`` (or the items at ``indices``), model in eval mode;
    sharded across ranks and gathered by :func:`map_sharded`."""
    if indices is not None and len(indices) == 0 or len(images) == 0:
        return torch.empty(0)
    was_training = model.training
    model.eval()

    def fn(x: torch.Tensor) -> tuple[torch.Tensor]:
        with accel.autocast():
            return (model(x).float().cpu(),)

    try:
        (logits,) = map_sharded(images, indices, batch_size, accel, fn)
    finally:
        model.train(was_training)
    return logits


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    images: ImageSource | LabeledImages,
    accel: Accel,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and penultimate features (float32, CPU) of ``images`` in one pass, model in eval
    mode: ``feats = model.features(x)``, ``logits = model.fc(feats)``. Gathered across ranks
    like :func:`predict_logits`."""
    net = unwrap(model)
    was_training = net.training
    net.eval()

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with accel.autocast():
            feats = net.features(x)
            logits = net.fc(feats)
        return logits.float().cpu(), feats.float().cpu()

    try:
        logits, feats = map_sharded(images, indices, batch_size, accel, fn)
    finally:
        net.train(was_training)
    return logits, feats


@torch.no_grad()
def predict_embeddings(
    model: nn.Module,
    head: nn.Module | None,
    images: ImageSource | LabeledImages,
    accel: Accel,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
    aug: CropFlip | None = None,
) -> torch.Tensor:
    """``head(model.features(x))`` (float32, CPU; the penultimate features themselves when
    ``head`` is None) of ``images`` (or the items at ``indices``) augmented with ``aug`` (one
    crop and flip per item, or None), model and head in eval mode; gathered across ranks like
    :func:`predict_logits`."""
    net = unwrap(model)
    parts = [net] if head is None else [net, head]
    modes = [m.training for m in parts]
    for m in parts:
        m.eval()

    def fn(x: torch.Tensor) -> tuple[torch.Tensor]:
        with accel.autocast():
            z = net.features(x)
            if head is not None:
                z = head(z)
        return (z.float().cpu(),)

    try:
        (out,) = map_sharded(images, indices, batch_size, accel, fn, aug)
    finally:
        for m, mode in zip(parts, modes, strict=True):
            m.train(mode)
    return out


def predict_odin(
    model: nn.Module,
    images: ImageSource | LabeledImages,
    accel: Accel,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
    **params: Any,
) -> torch.Tensor:
    """ODIN scores (float64, CPU) of ``images``: a pass of its own with input gradients, in fp32
    (no autocast: a bf16 softmax at T=1000 would be too coarse). ``params``: ``T``, ``eps``."""
    spec = get_score("odin")
    net = unwrap(model)
    (out,) = map_sharded(
        images, indices, batch_size, accel, lambda x: (spec.fn(net, x, **params).cpu(),)
    )
    return out
