"""The background (outlier) losses as ``nn.Module`` objects for anyone's training loop.

Each takes the logits of background images and returns their loss, reduced by ``reduction``
("mean", "sum" or "none": one value per image, what
:meth:`bgresample.BackgroundResampler.weighted_loss` and ``step`` take)::

    loss = F.cross_entropy(logits_id, y) + alpha * UniformityLoss()(logits_bg)
"""

from __future__ import annotations

from torch import Tensor, nn

from bgresample.losses.energy import M_IN, M_OUT, _out_term, energy_in_term
from bgresample.losses.extra_class import extra_class_loss
from bgresample.losses.uniformity import (
    Reduction,
    _reduce,
    max_entropy_loss,
    uniformity_loss,
)
from bgresample.scores.checks import check_logits

_REDUCTIONS = ("mean", "sum", "none")


class _OutlierLoss(nn.Module):
    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class UniformityLoss(_OutlierLoss):
    """Eq. 4, Outlier Exposure's loss: L_uni = -(1/K) sum_k log f_k - log K = KL(uniform || f).
    Zero iff the softmax of the logits is uniform."""

    def forward(self, logits: Tensor) -> Tensor:
        return uniformity_loss(logits, self.reduction)


class MaxEntropyLoss(_OutlierLoss):
    """The authors' variant of eq. 4: sum_k f_k log f_k + log K = KL(f || uniform)."""

    def forward(self, logits: Tensor) -> Tensor:
        return max_entropy_loss(logits, self.reduction)


class ExtraClassLoss(_OutlierLoss):
    """Cross entropy of ``(N, K+1)`` logits to the extra background class K (the model needs a
    (K+1)-th output: :func:`bgresample.losses.add_background_class`)."""

    def forward(self, logits: Tensor) -> Tensor:
        return extra_class_loss(logits, self.reduction)


class EnergyMarginLoss(_OutlierLoss):
    """Liu et al.'s energy-bounded loss (NeurIPS 2020): relu(m_out - E(x_out))^2 per background
    image, plus mean relu(E(x_in) - m_in)^2 over the ID batch when ``logits_in`` is given
    (E = -logsumexp of the logits). Their CIFAR-10 WRN margins: m_in = -25, m_out = -7."""

    def __init__(self, m_in: float = M_IN, m_out: float = M_OUT, reduction: Reduction = "mean"):
        super().__init__(reduction)
        if not m_in < m_out:
            raise ValueError(
                f"need m_in < m_out (ID energies below outliers'), got {m_in}, {m_out}"
            )
        self.m_in, self.m_out = float(m_in), float(m_out)

    def forward(self, logits: Tensor, logits_in: Tensor | None = None) -> Tensor:
        check_logits(logits)
        out = _reduce(_out_term(logits, self.m_out), self.reduction)
        if logits_in is None:
            return out
        if self.reduction == "none":
            raise ValueError(
                "logits_in cannot be used with reduction='none', which gives one value per "
                "background image (the ID term has none): call without logits_in and add "
                "bgresample.losses.energy_in_term(logits_in, m_in).mean() to the loss yourself"
            )
        return energy_in_term(logits_in, self.m_in).mean() + out

    def extra_repr(self) -> str:
        return f"m_in={self.m_in}, m_out={self.m_out}, reduction={self.reduction!r}"
