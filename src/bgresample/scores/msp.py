"""Maximum softmax probability (MSP), the paper's OOD score.

Hendrycks and Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples in
Neural Networks", ICLR 2017.
"""

import torch
from torch import Tensor

from bgresample.scores.checks import check_logits


def msp(logits: Tensor) -> Tensor:
    """max_k f_k(x) with f = softmax(logits) (eq. 1), for logits ``(N, K)``; higher = more ID.

    By Theorem 1 (eqs. 5-6) it falls toward 1/K where background density dominates. Refuses
    other shapes and probabilities (:func:`~bgresample.scores.checks.check_logits`).
    """
    check_logits(logits)
    return torch.softmax(logits, dim=-1).amax(dim=-1)
