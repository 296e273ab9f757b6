"""Score of a classifier with an extra (K+1)-th background class (see
:mod:`bgresample.losses.extra_class`)."""

import torch
from torch import Tensor

from bgresample.scores.checks import check_logits


def extra_class(logits: Tensor) -> Tensor:
    """max_{k<K} f_k(x), f = softmax over all K+1 logits ``(N, K+1)`` (the last is the
    background class); higher = more in-distribution."""
    check_logits(logits)
    return torch.softmax(logits, dim=-1)[..., :-1].amax(dim=-1)
