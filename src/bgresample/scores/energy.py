"""Energy score.

Liu, Wang, Owens and Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020.
"""

import torch
from torch import Tensor

from bgresample.scores.checks import check_logits


def energy(logits: Tensor, T: float = 1.0) -> Tensor:
    """The NEGATIVE free energy ``-E(x; T) = T * logsumexp(logits / T)`` of logits ``(N, K)``.

    The paper's energy is ``E(x; T) = -T logsumexp_k(f_k(x) / T)``, low for ID data; its negative
    is returned so that, as for MSP, higher = more ID. ``T`` is the temperature (the paper: 1).
    """
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    check_logits(logits)
    return T * torch.logsumexp(logits / T, dim=-1)
