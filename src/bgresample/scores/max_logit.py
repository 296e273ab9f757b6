"""Maximum logit (MaxLogit) score.

Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt and Song, "Scaling Out-of-Distribution
Detection for Real-World Settings", ICML 2022.
"""

from torch import Tensor


def max_logit(logits: Tensor) -> Tensor:
    """max_k logits_k over the last dim; higher = more ID. Unlike MSP it is not shift-invariant."""
    return logits.amax(dim=-1)
