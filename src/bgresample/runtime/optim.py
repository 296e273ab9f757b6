"""The classifier's optimiser and learning-rate schedules, shared by every training stage."""

from __future__ import annotations

import math

import torch
from torch import nn

from bgresample.errors import UserError


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with momentum and weight decay over every parameter of ``model``."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


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


def sgd_step(
    opt: torch.optim.Optimizer,
    loss: torch.Tensor,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One optimiser step on ``loss`` (and one scheduler step)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
