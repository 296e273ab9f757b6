"""Eq. 3-4 losses: values, KL identity, reductions and the name registry."""

import math

import pytest
import torch
import torch.nn.functional as F

from bgresample.losses import (
    OUTLIER_LOSSES,
    classification_loss,
    get_outlier_loss,
    max_entropy_loss,
    uniformity_loss,
)


@pytest.mark.parametrize("loss", [uniformity_loss, max_entropy_loss])
def test_zero_at_uniform_logits(loss):
    constants = torch.tensor([[0.0] * 10, [3.5] * 10, [-40.0] * 10, [1e4] * 10])
    assert torch.allclose(loss(constants, "none"), torch.zeros(4), atol=1e-6)


@pytest.mark.parametrize("loss", [uniformity_loss, max_entropy_loss])
def test_positive_away_from_uniform(loss):
    logits = torch.randn(64, 7, generator=torch.Generator().manual_seed(0))
    assert (loss(logits, "none") > 0).all()
    peaked = torch.tensor([[0.0, 0.0, 1e-2], [100.0, -100.0, 0.0]])
    assert (loss(peaked, "none") > 0).all()


def test_uniformity_equals_kl_uniform_to_softmax():
    logits = 5 * torch.randn(
        32, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    k = logits.shape[-1]
    f = torch.softmax(logits, dim=-1)
    explicit = (1.0 / k * (math.log(1.0 / k) - torch.log(f))).sum(dim=-1)
    uniform = torch.full_like(f, 1.0 / k)
    via_kl_div = F.kl_div(F.log_softmax(logits, -1), uniform, reduction="none").sum(dim=-1)
    ours = uniformity_loss(logits, "none")
    assert torch.allclose(ours, explicit, atol=1e-10)
    assert torch.allclose(ours, via_kl_div, atol=1e-10)


def test_max_entropy_equals_kl_softmax_to_uniform():
    logits = 5 * torch.randn(
        32, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    f = torch.softmax(logits, dim=-1)
    expected = (f * torch.log(f * logits.shape[-1])).sum(dim=-1)
    assert torch.allclose(max_entropy_loss(logits, "none"), expected, atol=1e-10)


def test_uniformity_stable_for_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0]])
    value = uniformity_loss(logits)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(1e4 - math.log(3), rel=1e-6)


@pytest.mark.parametrize("loss", [uniformity_loss, max_entropy_loss])
def test_reductions(loss):
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    per_example = loss(logits, "none")
    assert per_example.shape == (5,)
    assert torch.allclose(loss(logits, "mean"), per_example.mean())
    assert torch.allclose(loss(logits, "sum"), per_example.sum())
    assert torch.allclose(loss(logits), per_example.mean())
    with pytest.raises(ValueError, match="reduction"):
        loss(logits, "avg")


def test_classification_loss_is_cross_entropy():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(16, 5, generator=gen)
    targets = torch.randint(0, 5, (16,), generator=gen)
    per_example = -F.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    assert torch.allclose(classification_loss(logits, targets, "none"), per_example)
    assert torch.allclose(classification_loss(logits, targets), per_example.mean())
    assert torch.allclose(classification_loss(logits, targets, "sum"), per_example.sum())


def test_registry():
    assert OUTLIER_LOSSES == {"uniform": uniformity_loss, "max_entropy": max_entropy_loss}
    assert get_outlier_loss("uniform") is uniformity_loss
    assert get_outlier_loss("max_entropy") is max_entropy_loss
    with pytest.raises(ValueError, match="max_entropy, uniform") as info:
        get_outlier_loss("entropy")
    assert "\n" not in str(info.value)
