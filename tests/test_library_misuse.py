"""The library refuses misuse at the call, with a ValueError or TypeError naming the argument,
and leaves its state untouched: non-finite losses, out-of-range indices, momentum and eps out
of range, logits of the wrong rank and probabilities where logits are expected."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import bgresample
from bgresample import (
    BackgroundResampler,
    EnergyMarginLoss,
    ExtraClassLoss,
    MaxEntropyLoss,
    UniformityLoss,
    WeightedSampler,
    add_background_class,
    energy,
    extra_class,
    extra_class_loss,
    max_entropy_loss,
    max_logit,
    msp,
    uniformity_loss,
)
from bgresample.errors import UserError


def _stepped(n: int = 50) -> BackgroundResampler:
    resampler = BackgroundResampler(n, refresh_every=3)
    for t in range(4):
        idx = resampler.draw(8, torch.Generator().manual_seed(t))
        resampler.step(idx, torch.rand(8, generator=torch.Generator().manual_seed(t)))
    return resampler


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_step_refuses_non_finite_losses_and_keeps_the_weights(bad):
    resampler = _stepped()
    state = {
        k: v.clone() if isinstance(v, torch.Tensor) else v
        for k, v in resampler.state_dict().items()
    }
    losses = torch.rand(8)
    losses[3] = bad
    with pytest.raises(
        ValueError, match=r"per_example_loss holds 1 NaN or infinite value\(s\) of 8"
    ):
        resampler.step(torch.arange(8), losses)
    after = resampler.state_dict()
    assert after.keys() == state.keys() and resampler.steps == 4
    for key, value in state.items():
        assert (
            torch.equal(after[key], value)
            if isinstance(value, torch.Tensor)
            else (after[key] == value)
        )
    resampler.step(torch.arange(8), torch.rand(8))  # still usable
    assert bool(torch.isfinite(resampler.omega).all())


@pytest.mark.parametrize("indices", [[-1, 2], [0, 50], [3, 1000]])
def test_out_of_range_indices_are_refused_not_wrapped(indices):
    resampler = _stepped()
    omega = resampler.omega.clone()
    idx = torch.tensor(indices)
    for call in (
        lambda: resampler.step(idx, torch.ones(2)),
        lambda: resampler.weighted_loss(idx, torch.ones(2)),
        lambda: resampler.ratios(idx),
    ):
        with pytest.raises(ValueError, match=r"indices must be pool indices in \[0, 49\]"):
            call()
    assert torch.equal(resampler.omega, omega)
    with pytest.raises(ValueError, match="non-empty 1-d"):
        resampler.step(torch.zeros(0, dtype=torch.long), torch.zeros(0))
    with pytest.raises(TypeError, match="integer tensor"):
        resampler.step([1, 2], torch.ones(2))


@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1, float("nan"), True, "0.9"])
def test_momentum_must_lie_in_0_1(momentum):
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        BackgroundResampler(10, momentum=momentum)
    state = BackgroundResampler(10).state_dict()
    state["momentum"] = momentum
    with pytest.raises(ValueError, match="momentum"):
        BackgroundResampler(10).load_state_dict(state)


def test_eps_out_of_range_raises_and_eps_1_warns():
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
            BackgroundResampler(10, eps=eps)
    with pytest.warns(UserWarning, match="never moves them"):
        resampler = BackgroundResampler(10, eps=1.0)
    omega = resampler.omega.clone()
    resampler.step(torch.arange(4), torch.rand(4))
    assert torch.equal(resampler.omega, omega)  # what the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BackgroundResampler(10, eps=0.0)
        BackgroundResampler(10, eps=0.99)


def test_the_sampler_names_what_it_got():
    with pytest.raises(ValueError, match="probs must be finite and non-negative, got values from"):
        WeightedSampler(torch.tensor([1.0, float("nan")]))


SCORE_FNS = [msp, max_logit, energy, extra_class]
LOSS_FNS = [
    uniformity_loss,
    max_entropy_loss,
    extra_class_loss,
    UniformityLoss(),
    MaxEntropyLoss(),
    ExtraClassLoss(),
    EnergyMarginLoss(),
]


@pytest.mark.parametrize("fn", SCORE_FNS + LOSS_FNS)
@pytest.mark.parametrize("shape", [(10,), (2, 4, 10), (4, 1)])
def test_logits_of_the_wrong_rank_are_refused(fn, shape):
    with pytest.raises(ValueError, match=r"^logits must be 2-d, \(N, K\) with K >= 2"):
        fn(torch.randn(shape))


@pytest.mark.parametrize("fn", SCORE_FNS + LOSS_FNS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_probabilities_are_refused_where_logits_are_expected(fn, dtype):
    logits = torch.randn(16, 10, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="look like probabilities"):
        fn(torch.softmax(logits, dim=1).to(dtype))
    fn(logits.to(dtype))  # logits pass
    fn(torch.log_softmax(logits, dim=1).to(dtype))  # log-probabilities are logits
    fn(torch.zeros(16, 10, dtype=dtype))  # in [0, 1] but rows sum to 0: not probabilities


@pytest.mark.parametrize("fn", SCORE_FNS + LOSS_FNS)
def test_integer_logits_are_a_type_error(fn):
    with pytest.raises(TypeError, match="floating tensor of logits"):
        fn(torch.ones(4, 3, dtype=torch.long))


def test_the_energy_loss_names_its_argument():
    loss = EnergyMarginLoss()
    with pytest.raises(ValueError, match="logits_in must be 2-d"):
        loss(torch.randn(4, 3), torch.randn(4))
    with pytest.raises(ValueError, match="logits_in cannot be used with reduction='none'"):
        EnergyMarginLoss(reduction="none")(torch.randn(4, 3), torch.randn(4, 3))


def test_add_background_class_raises_value_error_not_user_error():
    with pytest.raises(ValueError, match="model must have a final linear head fc") as info:
        add_background_class(nn.Sequential(nn.Linear(4, 3)), 3)
    assert not isinstance(info.value, UserError)


def test_the_library_never_raises_user_error():
    import inspect
    import pkgutil

    library = ["bgresample.detector", "bgresample.metrics", "bgresample.scores.checks"]
    for pkg in (bgresample.losses, bgresample.resampling, bgresample.scores):
        library += [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    for name in library:
        module = __import__(name, fromlist=["_"])
        assert "UserError" not in inspect.getsource(module), name
