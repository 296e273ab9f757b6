"""The outlier losses as nn.Modules equal the functions of eq. 4 and Liu et al.'s margins."""

from __future__ import annotations

import pytest
import torch

from bgresample import EnergyMarginLoss, ExtraClassLoss, MaxEntropyLoss, UniformityLoss
from bgresample.losses import (
    energy_margin_loss,
    energy_out_term,
    extra_class_loss,
    max_entropy_loss,
    uniformity_loss,
)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_modules_equal_the_functions(reduction):
    torch.manual_seed(0)
    logits = torch.randn(7, 5)
    assert torch.equal(UniformityLoss(reduction)(logits), uniformity_loss(logits, reduction))
    assert torch.equal(MaxEntropyLoss(reduction)(logits), max_entropy_loss(logits, reduction))
    assert torch.equal(ExtraClassLoss(reduction)(logits), extra_class_loss(logits, reduction))
    per = energy_out_term(logits, -2.0)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    assert torch.equal(EnergyMarginLoss(-5.0, -2.0, reduction)(logits), expected)


def test_uniformity_is_zero_at_the_uniform_prediction():
    assert UniformityLoss()(torch.zeros(3, 10)).abs() < 1e-6
    assert UniformityLoss()(torch.tensor([[9.0, 0.0, 0.0]])) > 1.0


def test_energy_with_id_logits_is_liu_et_al_loss():
    li, lo = torch.randn(4, 3) * 5, torch.randn(6, 3) * 5
    assert torch.equal(EnergyMarginLoss(-3.0, -1.0)(lo, li), energy_margin_loss(li, lo, -3.0, -1.0))
    with pytest.raises(ValueError, match="ID term"):
        EnergyMarginLoss(reduction="none")(lo, li)
    with pytest.raises(ValueError, match="m_in < m_out"):
        EnergyMarginLoss(m_in=-1.0, m_out=-5.0)
    with pytest.raises(ValueError, match="reduction"):
        UniformityLoss("avg")
