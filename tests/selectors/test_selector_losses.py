"""The energy-margin loss, the extra background class (loss, head, score) and the fine-tuning
objective, checked against values computed by hand."""

import math

import pytest
import torch
from torch import nn

from bgresample.engine.finetune import background_objective
from bgresample.errors import UserError
from bgresample.losses import (
    FINETUNE_LOSSES,
    EnergyOptions,
    add_background_class,
    energy_margin_loss,
    extra_class_loss,
    free_energy,
    uniformity_loss,
)
from bgresample.scores import get_score


def _lse(*v: float) -> float:
    return math.log(sum(math.exp(x) for x in v))


def test_energy_margin_loss_by_hand():
    li = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    lo = torch.tensor([[3.0, 1.0], [-4.0, -4.0]], dtype=torch.float64)
    m_in, m_out = -2.5, -1.0
    e_in = [-_lse(1, 2), -_lse(0, 0)]  # -2.31, -0.69: hinge above m_in
    e_out = [-_lse(3, 1), -_lse(-4, -4)]  # -3.13 (below m_out: hinge), 3.31 (none)
    expected = sum(max(e - m_in, 0) ** 2 for e in e_in) / 2
    expected += sum(max(m_out - e, 0) ** 2 for e in e_out) / 2
    assert torch.allclose(free_energy(li), torch.tensor(e_in, dtype=torch.float64))
    got = energy_margin_loss(li, lo, m_in=m_in, m_out=m_out)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    far = energy_margin_loss(li, lo, m_in=10.0, m_out=-10.0)
    assert far.item() == 0.0


def test_extra_class_loss_and_score_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    per = extra_class_loss(logits, reduction="none")
    assert per[0].item() == pytest.approx(math.log(3))
    assert per[1].item() == pytest.approx(_lse(1, 2, 3) - 3)
    assert extra_class_loss(logits).item() == pytest.approx(per.mean().item())
    # softmax of [0, ln 2, 0] is [1/4, 1/2, 1/4]: the best ID class (of K = 2) has 1/2
    s = get_score("extra_class")(torch.tensor([[0.0, math.log(2), 0.0], [0.0, 0.0, 50.0]]))
    assert s[0].item() == pytest.approx(0.5)
    assert s[1].item() < 1e-20  # background class dominates: least ID-like


def test_add_background_class_keeps_the_k_logits():
    model = nn.Module()
    model.fc = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    before = model.fc(x)
    add_background_class(model, 2)
    assert model.fc.out_features == 3
    after = model.fc(x)
    assert torch.allclose(after[:, :2], before)
    assert torch.equal(after[:, 2], torch.zeros(4))
    add_background_class(model, 2)  # already K+1: unchanged
    assert model.fc.out_features == 3
    with pytest.raises(ValueError, match="outputs"):
        add_background_class(model, 5)


def test_background_objective():
    li, lb = torch.randn(4, 3), torch.randn(5, 3)
    assert set(FINETUNE_LOSSES) >= {"uniform", "max_entropy", "energy", "extra_class"}
    assert background_objective("uniform")(li, lb) == uniformity_loss(lb)
    margins = EnergyOptions(m_in=-3.0, m_out=-1.0, alpha=0.1)
    assert background_objective("energy", margins)(li, lb) == energy_margin_loss(li, lb, -3, -1)
    assert background_objective("extra_class")(li, lb) == extra_class_loss(lb)
    with pytest.raises(UserError, match="valid: .*energy"):
        background_objective("nope")
