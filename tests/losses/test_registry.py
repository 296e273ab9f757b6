"""Background losses and scores are registered by name, in one place each, and the config and
the training loops find them there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bgresample.config import dump, load_config
from bgresample.engine.experiment import finetune_section, loss_options
from bgresample.engine.finetune import background_objective
from bgresample.errors import UserError
from bgresample.losses import (
    BACKGROUND_LOSSES,
    EnergyOptions,
    LossSpec,
    algorithm1_losses,
    register_loss,
)
from bgresample.options import POSITIVE, option
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


class ScaledSquares(SquaredLogits):
    """The toy loss times ``scale``: a loss with options."""

    def __init__(self, scale: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if scale > 10:
            raise ValueError(f"scale must be at most 10, got {scale}")
        self.scale = scale

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.scale * super().forward(logits)


@dataclass
class ScaledOptions:
    scale: float = option(2.0, POSITIVE, "factor of the squared logits")
    alpha: float = option(0.25, POSITIVE, "replaces finetune.alpha")


@pytest.fixture
def scaled():
    register_loss("scaled", LossSpec(ScaledSquares, options=ScaledOptions))
    yield
    BACKGROUND_LOSSES.pop("scaled")


def test_a_loss_declares_its_options_once_and_the_config_builds_its_section(scaled):
    cfg = load_config(sets=["finetune.loss=scaled", "selectors.scaled.scale=3"])
    assert cfg.selectors.scaled == ScaledOptions(scale=3.0, alpha=0.25)
    assert "scaled" not in cfg.selectors.to_options()  # selectors' keyword arguments only
    assert finetune_section(cfg).alpha == 0.25  # the loss's alpha replaces finetune.alpha
    logits = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    assert background_objective("scaled", loss_options(cfg))(logits, logits).item() == 4.5
    assert background_objective("scaled")(logits, logits).item() == 3.0  # the defaults
    assert load_config().selectors.scaled.scale == 2.0
    with pytest.raises(UserError, match=r"selectors.scaled.scale=-1 is invalid: expected a pos"):
        load_config(sets=["selectors.scaled.scale=-1"])
    with pytest.raises(UserError, match="selectors.scaled: scale must be at most 10"):
        load_config(sets=["selectors.scaled.scale=11"])
    with pytest.raises(ValueError, match="has no option sc; valid: scale, alpha"):
        BACKGROUND_LOSSES["scaled"].make_options(sc=1)
    with pytest.raises(ValueError, match="at most 10"):
        BACKGROUND_LOSSES["scaled"].make_options(scale=20)


def test_energy_options_live_with_the_loss():
    cfg = load_config()
    assert cfg.selectors.energy == EnergyOptions() == EnergyOptions(-12.0, -4.0, 0.1)
    assert "energy:" in dump(cfg) and "m_in: -12.0" in dump(cfg)
    assert finetune_section(cfg).alpha == cfg.finetune.alpha  # only with finetune.loss=energy
    energy = load_config(sets=["finetune.loss=energy", "selectors.energy.alpha=0.2"])
    assert finetune_section(energy).alpha == 0.2
    loss = BACKGROUND_LOSSES["energy"].build(energy.selectors.energy)
    assert (loss.m_in, loss.m_out) == (-12.0, -4.0)
    with pytest.raises(ValueError, match="need m_in < m_out"):
        BACKGROUND_LOSSES["energy"].make_options(m_in=0.0)
    with pytest.raises(ValueError, match="takes no options"):
        BACKGROUND_LOSSES["uniform"].make_options(scale=1)


def test_the_built_in_losses_declare_themselves():
    assert list(BACKGROUND_LOSSES) == [
        "uniform",
        "max_entropy",
        "energy",
        "extra_class",
        "hopfield",
    ]
    assert algorithm1_losses() == ["uniform", "max_entropy"]
    assert BACKGROUND_LOSSES["energy"].uses_id and BACKGROUND_LOSSES["energy"].score == "energy"
    assert BACKGROUND_LOSSES["extra_class"].extra_class
    hopfield = BACKGROUND_LOSSES["hopfield"]
    assert hopfield.embeddings and hopfield.score == "hopfield"
    # its options live in selectors.hopfield-loss (selectors.hopfield is the selector's)
    cfg = load_config(sets=["finetune.loss=hopfield", "selectors.hopfield-loss.beta=2"])
    assert loss_options(cfg).beta == 2.0 and cfg.selectors.hopfield.beta == 4.0
    assert finetune_section(cfg).alpha == 0.5  # their ood_weight
    with pytest.raises(UserError, match="selectors.hopfield-loss.head_dim=0 is invalid"):
        load_config(sets=["selectors.hopfield-loss.head_dim=0"])
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
