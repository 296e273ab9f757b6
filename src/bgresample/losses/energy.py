"""The energy-bounded fine-tuning loss of Liu et al., "Energy-based Out-of-distribution
Detection" (NeurIPS 2020): squared hinges that push the free energy of ID inputs below
``m_in`` and that of background (outlier) inputs above ``m_out``."""

import torch
import torch.nn.functional as F
from torch import Tensor

from bgresample.scores.checks import check_logits

#: Liu et al.'s margins for CIFAR-10 (a WRN); other models and data may need others.
M_IN, M_OUT = -25.0, -7.0


def free_energy(logits: Tensor) -> Tensor:
    """E(x) = -logsumexp_k v_k(x), over the last dim; lower = more in-distribution."""
    return -torch.logsumexp(logits, dim=-1)


def energy_in_term(logits_in: Tensor, m_in: float = M_IN) -> Tensor:
    """relu(E(x) - m_in)^2 per ID input, from logits ``(N, K)``."""
    check_logits(logits_in, "logits_in")
    return F.relu(free_energy(logits_in) - m_in).square()


def energy_out_term(logits_out: Tensor, m_out: float = M_OUT) -> Tensor:
    """relu(m_out - E(x))^2 per background input, from logits ``(N, K)``."""
    check_logits(logits_out, "logits_out")
    return _out_term(logits_out, m_out)


def _out_term(logits: Tensor, m_out: float) -> Tensor:
    """:func:`energy_out_term` of logits already checked."""
    return F.relu(m_out - free_energy(logits)).square()


def energy_margin_loss(
    logits_in: Tensor, logits_out: Tensor, m_in: float = M_IN, m_out: float = M_OUT
) -> Tensor:
    """mean(relu(E(x_in) - m_in)^2) + mean(relu(m_out - E(x_out))^2)."""
    return energy_in_term(logits_in, m_in).mean() + energy_out_term(logits_out, m_out).mean()
