"""Score of a classifier with an extra (K+1)-th background class (see
:mod:`bgresample.losses.extra_class`)."""

import torch
from torch import Tensor


def extra_class(logits: Tensor) -> Tensor:
    """max_{k<K} f_k(x), f = softmax over all K+1 logits (the last is the background class);
    higher = more in-distribution."""
    return torch.softmax(logits, dim=-1)[..., :-1].amax(dim=-1)
