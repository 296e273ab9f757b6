"""The check of the logits that the scores and the background losses take."""

import torch
from torch import Tensor

#: How far from 1 the row sums of a batch may be for it to count as probabilities (bf16 or fp16
#: softmax outputs sum to 1 within a few 1e-3).
PROB_TOL = 1e-2


def check_logits(logits: Tensor, name: str = "logits") -> None:
    """Raise unless ``logits`` is a floating tensor ``(N, K)``, K >= 2, of logits, i.e. not a
    batch of probabilities (every value in [0, 1] and every row summing to 1).

    Reads the min and max back to the host (a GPU sync on a GPU), and the row sums too where
    every value is in [0, 1].
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        kind = f"a {logits.dtype} tensor" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"{name} must be a floating tensor of logits (N, K), got {kind}")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"{name} must be 2-d, (N, K) with K >= 2 classes (one row per input), got shape "
            f"{tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        return
    x = logits.detach()
    lo, hi = torch.stack(torch.aminmax(x)).tolist()
    if not (lo >= 0.0 and hi <= 1.0):
        return
    off = (x.sum(dim=1, dtype=torch.float64) - 1.0).abs().max().item()
    if off <= PROB_TOL:
        raise ValueError(
            f"{name} look like probabilities (every value in [0, 1], every row summing to 1); "
            "pass the model's logits, before the softmax"
        )
