"""The weight step's scale against the losses' magnitude: ``step_scale="mean"`` keeps the
effective sample size (ESS) of p (eq. 11) in the same range for losses of size 1 and 400, where
the paper's step (lr 100, Table 1) collapses it at 400. docs/api.md states the range."""

from __future__ import annotations

import warnings

import pytest
import torch

from bgresample import BackgroundResampler

N, BATCH, STEPS = 4000, 128, 50
#: The ESS range after 50 steps that docs/api.md states for step_scale="mean".
ESS_RANGE = (0.6 * N, 0.9 * N)


def _ess(scale: float, step_scale: str, seed: int = 0) -> float:
    """ESS after 50 steps on N items of fixed hardness h_i ~ U(0, 2) (mean 1), losses scale * h."""
    gen = torch.Generator().manual_seed(seed)
    hardness = 2.0 * torch.rand(N, generator=gen)
    resampler = BackgroundResampler(N, step_scale=step_scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the loud-loss warning of "none"
        for _ in range(STEPS):
            idx = resampler.draw(BATCH, gen)
            resampler.step(idx, scale * hardness[idx])
    return resampler.stats()["ess"]


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_step_keeps_the_ess_in_range_for_losses_of_size_1_and_400(seed):
    small, large = _ess(1.0, "mean", seed), _ess(400.0, "mean", seed)
    for ess in (small, large):
        assert ESS_RANGE[0] <= ess <= ESS_RANGE[1]
    assert large == pytest.approx(small, rel=1e-3)  # the scale divides out


def test_the_papers_step_collapses_with_losses_of_400():
    assert ESS_RANGE[0] <= _ess(1.0, "none") <= ESS_RANGE[1]  # lr 100 suits losses near 1
    assert _ess(400.0, "none") < 0.1 * N  # ~150 of 4,000: the hazard step_scale="mean" removes


def test_mean_step_is_the_step_on_normalised_losses_and_leaves_the_objective_alone():
    gen, twin = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    scaled = BackgroundResampler(300, step_scale="mean", refresh_every=4)
    plain = BackgroundResampler(300, refresh_every=4)
    for _ in range(6):
        idx = scaled.draw(32, gen)
        assert torch.equal(plain.draw(32, twin), idx)  # refreshes alike
        losses = 50.0 * torch.rand(32, generator=gen)
        twin.set_state(gen.get_state())
        assert torch.equal(scaled.weighted_loss(idx, losses), plain.weighted_loss(idx, losses))
        scaled.step(idx, losses)
        plain.step(idx, losses / (losses.double().abs().sum().item() / 32))
    assert torch.equal(scaled.omega, plain.omega)


def test_step_scale_survives_state_dict_and_files(tmp_path):
    resampler = BackgroundResampler(20, step_scale="mean")
    fresh = BackgroundResampler(20)
    fresh.load_state_dict(resampler.state_dict())
    assert fresh.step_scale == "mean"
    resampler.save(tmp_path / "w.safetensors")
    assert BackgroundResampler.load(tmp_path / "w.safetensors").step_scale == "mean"
    old = resampler.state_dict()
    del old["step_scale"]  # a state of an earlier version
    fresh.load_state_dict(old)
    assert fresh.step_scale == "none"


def test_loud_losses_warn_once_with_the_papers_step():
    resampler = BackgroundResampler(100)
    idx = torch.arange(16)
    with pytest.warns(RuntimeWarning, match="step_scale='mean'"):
        resampler.step(idx, torch.full((16,), 400.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resampler.step(idx, torch.full((16,), 400.0))  # once per resampler
        BackgroundResampler(100).step(idx, torch.full((16,), 1.0))  # losses near 1: quiet
        BackgroundResampler(100, step_scale="mean").step(idx, torch.full((16,), 400.0))
