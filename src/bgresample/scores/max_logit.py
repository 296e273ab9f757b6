"""Maximum logit (MaxLogit) score.

Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt and Song, "Scaling Out-of-Distribution
Detection for Real-World Settings", ICML 2022.
"""

from torch import Tensor

from bgresample.scores.checks import check_logits


def max_logit(logits: Tensor) -> Tensor:
    """max_k logits_k of logits ``(N, K)``; higher = more ID. Unlike MSP it is not
    shift-invariant."""
    check_logits(logits)
    return logits.amax(dim=-1)
