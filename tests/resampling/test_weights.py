"""BackgroundWeights: unbiasedness of eqs. 10-12, the analytic weight gradient, persistence."""

import pytest
import torch
import torch.nn.functional as F

from bgresample.resampling import W_FLOOR, BackgroundWeights, WeightedSampler

EPSILONS = [0.0, 0.25, 0.5, 1.0]


def _random_weights(n: int, eps: float, seed: int) -> BackgroundWeights:
    module = BackgroundWeights(n, eps=eps)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.omega.copy_(2.0 * torch.randn(n, generator=gen))
    return module


def test_init_is_softplus_zero():
    module = BackgroundWeights(7)
    assert module.omega.dtype == torch.float32 and module.omega.shape == (7,)
    assert torch.all(module.omega == 0)
    assert torch.allclose(module.weights(), torch.full((7,), F.softplus(torch.tensor(0.0)).item()))
    assert module.eps == 0.5 and len(module) == 7


@pytest.mark.parametrize("eps", EPSILONS)
def test_unbiased_by_enumeration_and_monte_carlo(eps):
    n = 500
    module = _random_weights(n, eps, seed=1)
    losses = torch.rand(n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = module.weights(torch.float64)
    p = module.probs()
    r = module.ratios(torch.arange(n), dtype=torch.float64)
    target = (w * losses).sum() / w.sum()
    assert p.dtype == torch.float64
    assert torch.allclose(p.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=1e-12)
    torch.testing.assert_close((p * r * losses).sum(), target, rtol=1e-10, atol=0)

    draws = WeightedSampler(p).draw(200_000, torch.Generator().manual_seed(3))
    estimate = (module.ratios(draws, dtype=torch.float64) * losses[draws]).mean()
    torch.testing.assert_close(estimate, target, rtol=1e-2, atol=0)


def test_eps_limits():
    uniform = _random_weights(50, 0.0, seed=4)
    assert torch.allclose(uniform.probs(), torch.full((50,), 1 / 50, dtype=torch.float64))
    importance = _random_weights(50, 1.0, seed=4)
    assert torch.all(importance.ratios(torch.arange(50)) == 1.0)
    s_eps, s_1 = importance.sums()
    assert s_eps.dtype == torch.float64 and s_eps == s_1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BackgroundWeights(3, eps=1.5)


def _autograd_grad(module: BackgroundWeights, indices, losses) -> torch.Tensor:
    omega = module.omega.detach().double().requires_grad_()
    w = F.softplus(omega)
    eps = module.eps
    ratio = (w**eps).sum() / w.sum() * w[indices] ** (1 - eps)
    (ratio * losses.double()).mean().backward()
    return omega.grad


@pytest.mark.parametrize("eps", EPSILONS)
def test_grad_omega_matches_autograd(eps):
    n = 40
    module = _random_weights(n, eps, seed=5)
    gen = torch.Generator().manual_seed(6)
    indices = torch.cat([torch.randint(n, (24,), generator=gen), torch.tensor([3, 3, 3, 7, 7])])
    losses = torch.rand(indices.numel(), generator=gen)
    ours = module.grad_omega(indices, losses)
    expected = _autograd_grad(module, indices, losses)
    assert ours.dtype == torch.float32 and ours.shape == (n,)
    if eps < 1:
        assert torch.all(ours != 0)  # dense: every omega moves through the two sums
    else:
        assert torch.all(ours == 0)  # r_i == 1: l_out does not depend on w at all
    scale = expected.abs().max().item()
    torch.testing.assert_close(ours.double(), expected, rtol=1e-6, atol=1e-6 * scale)


def test_expected_grad_is_full_objective_grad_at_eps_zero():
    # E_{i~p}[grad of r_i L_i] by enumeration equals the gradient of sum_i w_i L_i / sum_j w_j
    # only at eps = 0: for eps > 0 the sampling distribution also depends on w.
    n = 30
    module = _random_weights(n, 0.0, seed=10)
    losses = torch.rand(n, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    p = module.probs()
    expected = sum(
        p[i] * module.grad_omega(torch.tensor([i]), losses[i : i + 1]).double() for i in range(n)
    )
    omega = module.omega.detach().double().requires_grad_()
    w = F.softplus(omega)
    ((w * losses).sum() / w.sum()).backward()
    torch.testing.assert_close(expected, omega.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("eps", EPSILONS)
def test_grad_omega_finite_at_the_floor(eps):
    module = _random_weights(10, eps, seed=7)
    with torch.no_grad():
        module.omega[0] = -1e4
        module.omega[1] = 1e4
    assert module.weights()[0].item() == pytest.approx(W_FLOOR)
    grad = module.grad_omega(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 3.0]))
    assert torch.isfinite(grad).all()
    assert torch.isfinite(module.probs()).all() and module.probs()[0] > 0


def test_state_dict_carries_omega_and_eps():
    module = _random_weights(33, 0.25, seed=8)
    other = BackgroundWeights(33, eps=0.9)
    other.load_state_dict(module.state_dict())
    assert other.eps == 0.25 and torch.equal(other.omega, module.omega)


def test_ess_and_stats():
    assert BackgroundWeights(1000, eps=0.5).ess() == pytest.approx(1000, rel=1e-12)
    module = _random_weights(100, 1.0, seed=9)
    stats = module.stats()
    assert set(stats) == {"w_min", "w_median", "w_max", "ess"}
    assert stats["w_min"] <= stats["w_median"] <= stats["w_max"]
    assert 1 <= stats["ess"] < 100
