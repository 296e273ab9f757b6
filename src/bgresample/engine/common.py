"""Pieces shared by the training loops: devices, batches, optimisers, schedules, forward passes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.transforms import prepare
from bgresample.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available; use --device cpu")
    return device


def generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one random stream (ID order, augmentation, background) of a seed."""
    return torch.Generator().manual_seed(seed * 7919 + stream)


def epoch_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batches of indices in ``range(n)``; the last partial batch is dropped
    (kept when ``n < batch_size``) so every step sees the same batch size."""
    if n == 0:
        raise UserError("cannot draw batches from an empty set")
    while True:
        perm = torch.randperm(n, generator=gen)
        stop = max(n - batch_size + 1, 1)
        for i in range(0, stop, batch_size):
            yield perm[i : i + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(n // batch_size, 1)


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=False
    )


def schedule(
    opt: torch.optim.Optimizer, kind: str, total_steps: int, steps_per_ep: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate factor: ``cosine``, ``step`` (x0.1 at 50% and 75%), ``step30``
    (x0.1 every 30 epochs, the authors' fine-tuning recipe) or ``constant``."""
    total = max(total_steps, 1)
    if kind == "cosine":
        fn = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))  # noqa: E731
    elif kind == "step":
        fn = lambda s: 0.1 ** ((s >= total // 2) + (s >= 3 * total // 4))  # noqa: E731
    elif kind == "step30":
        fn = lambda s: 0.1 ** (s // (30 * steps_per_ep))  # noqa: E731
    elif kind == "constant":
        fn = lambda s: 1.0  # noqa: E731
    else:
        raise UserError(f"unknown schedule '{kind}'; valid: cosine, step, step30, constant")
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)


def to_model_input(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def check_finite(loss: torch.Tensor, stage: str, step: int, last_checkpoint: str | None) -> None:
    """Stop a stage on a NaN / inf loss, naming the step and the last good checkpoint."""
    if not torch.isfinite(loss):
        where = last_checkpoint or "none yet"
        raise UserError(
            f"{stage}: loss became {loss.item()} at step {step}; last good checkpoint: {where}. "
            "Lower the learning rate (--set ...lr=) and resume or re-run."
        )


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: ImageArray | LabeledImages,
    device: torch.device,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits (float32, CPU) of ``images`` (or the items at ``indices``), model in eval mode."""
    was_training = model.training
    model.eval()
    normalized = getattr(images, "normalized", False)
    idx = torch.arange(len(images)) if indices is None else indices
    out = []
    for i in range(0, len(idx), batch_size):
        chunk = idx[i : i + batch_size]
        raw = images.get_batch(chunk) if isinstance(images, ImageArray) else images.data[chunk]
        x = to_model_input(prepare(raw, normalized=normalized), device, channels_last)
        out.append(model(x).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def joint_forward(
    model: nn.Module, x_id: torch.Tensor, x_bg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward pass over the ID and background batches together; split the logits."""
    if x_bg is None:
        return model(x_id), None
    logits = model(torch.cat([x_id, x_bg]))
    return logits[: len(x_id)], logits[len(x_id) :]


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)
