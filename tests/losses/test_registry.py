"""Background losses and scores are registered by name, in one place each, and the config and
the training loops find them there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bgresample.config import load_config
from bgresample.engine.finetune import background_objective
from bgresample.errors import UserError
from bgresample.losses import BACKGROUND_LOSSES, LossSpec, algorithm1_losses, register_loss
from bgresample.scores import SCORES, get_score, register_score


class SquaredLogits(nn.Module):
    """A toy per-example background loss: the mean squared logit."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        per = logits.pow(2).mean(dim=1)
        return per if self.reduction == "none" else per.mean()


@pytest.fixture
def squared():
    register_loss("squared", LossSpec(SquaredLogits, algorithm1=True))
    yield
    BACKGROUND_LOSSES.pop("squared")


def test_a_registered_loss_is_a_config_value_and_an_objective(squared):
    assert load_config(sets=["finetune.loss=squared"]).finetune.loss == "squared"
    assert load_config(sets=["resample.loss=squared"]).resample.loss == "squared"
    assert "squared" in algorithm1_losses()
    objective = background_objective("squared")
    logits = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    assert objective(logits, logits).item() == pytest.approx(1.5)


def test_the_built_in_losses_declare_themselves():
    assert list(BACKGROUND_LOSSES) == ["uniform", "max_entropy", "energy", "extra_class"]
    assert algorithm1_losses() == ["uniform", "max_entropy"]
    assert BACKGROUND_LOSSES["energy"].uses_id and BACKGROUND_LOSSES["energy"].score == "energy"
    assert BACKGROUND_LOSSES["extra_class"].extra_class
    with pytest.raises(UserError, match="resample.loss='energy' is invalid"):
        load_config(sets=["resample.loss=energy"])
    with pytest.raises(ValueError, match="registered already"):
        register_loss("uniform", LossSpec(SquaredLogits))


def test_a_registered_score_is_found_by_name():
    register_score("neg_energy_t2", lambda logits: torch.logsumexp(logits / 2, dim=1))
    try:
        spec = get_score("neg_energy_t2")
        assert spec.needs == "logits" and spec(torch.zeros(1, 4)).item() == pytest.approx(
            torch.log(torch.tensor(4.0)).item()
        )
        with pytest.raises(ValueError, match="registered already"):
            register_score("neg_energy_t2", lambda logits: logits[:, 0])
    finally:
        SCORES.pop("neg_energy_t2")
