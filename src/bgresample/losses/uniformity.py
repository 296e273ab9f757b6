"""Training losses of eqs. 2-4: classification on ID data, uniformity on background data."""

import math
from collections.abc import Callable
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from bgresample.scores.checks import check_logits

Reduction = Literal["mean", "sum", "none"]


def _reduce(per_example: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def uniformity_loss(logits: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Eq. 4: L_uni = -(1/K) sum_k log f_k - log K = KL(uniform || f), for logits ``(N, K)``.

    Zero iff softmax(logits) is uniform. Computed from log_softmax, so stable for any finite
    logits. ``reduction='none'`` returns one value per row (shape ``(N,)``). Refuses other
    shapes and probabilities (:func:`~bgresample.scores.checks.check_logits`: a host read, so
    a GPU sync on a GPU).
    """
    check_logits(logits)
    num_classes = logits.shape[-1]
    per_example = -F.log_softmax(logits, dim=-1).mean(dim=-1) - math.log(num_classes)
    return _reduce(per_example, reduction)


def max_entropy_loss(logits: Tensor, reduction: Reduction = "mean") -> Tensor:
    """The authors' variant of eq. 4: sum_k f_k log f_k + log K = log K - H(f) = KL(f || uniform).

    Zero iff softmax(logits) is uniform. Logits ``(N, K)``, checked as by
    :func:`uniformity_loss`.
    """
    check_logits(logits)
    num_classes = logits.shape[-1]
    log_f = F.log_softmax(logits, dim=-1)
    per_example = (log_f.exp() * log_f).sum(dim=-1) + math.log(num_classes)
    return _reduce(per_example, reduction)


def classification_loss(logits: Tensor, targets: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Eq. 3: L_cls = -log f_y(x), the cross entropy of logits ``(N, K)`` and labels ``(N,)``."""
    return _reduce(F.cross_entropy(logits, targets, reduction="none"), reduction)


OUTLIER_LOSSES: dict[str, Callable[..., Tensor]] = {
    "uniform": uniformity_loss,
    "max_entropy": max_entropy_loss,
}


def get_outlier_loss(name: str) -> Callable[..., Tensor]:
    """Look up a background (outlier) loss by name; raise ValueError listing the valid names."""
    try:
        return OUTLIER_LOSSES[name]
    except KeyError:
        valid = ", ".join(sorted(OUTLIER_LOSSES))
        raise ValueError(f"unknown outlier loss {name!r}; valid names: {valid}") from None


__all__ = [
    "OUTLIER_LOSSES",
    "Reduction",
    "classification_loss",
    "get_outlier_loss",
    "max_entropy_loss",
    "uniformity_loss",
]
