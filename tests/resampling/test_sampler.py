"""WeightedSampler / UniformSampler: exact frequencies, zero-mass items, pools beyond 2^24."""

import pytest
import torch
from scipy.stats import chisquare

from bgresample.resampling import BackgroundWeights, UniformSampler, WeightedSampler

HEAD, TAIL = 200, 100_000


def _heavy_tail_pool(eps: float) -> torch.Tensor:
    """p of eq. 11 over 200 ordinary weights and 100k weights a million times smaller."""
    module = BackgroundWeights(HEAD + TAIL, eps=eps)
    gen = torch.Generator().manual_seed(0)
    w = torch.cat([0.5 + 1.5 * torch.rand(HEAD, generator=gen), torch.full((TAIL,), 1e-6)])
    with torch.no_grad():
        module.omega.copy_(torch.log(torch.expm1(w.double())).float())  # softplus^-1
    return module.probs()


@pytest.mark.parametrize("eps", [0.25, 0.5, 1.0])
def test_frequencies_match_probs(eps):
    p = _heavy_tail_pool(eps)
    draws = WeightedSampler(p).draw(1_000_000, torch.Generator().manual_seed(int(eps * 100)))
    counts = torch.bincount(draws, minlength=p.numel()).double()
    # One bin per head item, the tail in 10 bins of 10k items (each tail item is tiny alone).
    observed = torch.cat([counts[:HEAD], counts[HEAD:].view(10, -1).sum(1)])
    expected = torch.cat([p[:HEAD], p[HEAD:].view(10, -1).sum(1)]) * draws.numel()
    assert expected.min() > 5
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3


def test_never_draws_zero_probability_items():
    probs = torch.tensor([0.0, 1e-300, 0.0, 2.0, 0.0, 1e-6, 3.0, 0.0, 0.0])
    draws = WeightedSampler(probs).draw(200_000, torch.Generator().manual_seed(1))
    assert torch.all(probs[draws] > 0)


def test_pool_larger_than_multinomial_limit():
    n = 2**24 + 1
    probs = torch.zeros(n, dtype=torch.float64)
    probs[-1] = 1.0
    sampler = WeightedSampler(probs)
    assert torch.all(sampler.draw(100, torch.Generator().manual_seed(2)) == n - 1)
    sampler.refresh(torch.ones(n))
    draws = sampler.draw(10_000, torch.Generator().manual_seed(3))
    assert draws.dtype == torch.int64 and len(sampler) == n
    assert draws.min() >= 0 and draws.max() < n
    assert draws.max() > 2**23  # reaches the upper half of the pool


def test_deterministic_for_a_seed():
    p = torch.rand(1000, generator=torch.Generator().manual_seed(4))
    sampler = WeightedSampler(p)
    a = sampler.draw(500, torch.Generator().manual_seed(5))
    b = sampler.draw(500, torch.Generator().manual_seed(5))
    c = sampler.draw(500, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rejects_bad_probs():
    for bad in [torch.zeros(3), torch.tensor([1.0, -1.0]), torch.tensor([1.0, float("nan")])]:
        with pytest.raises(ValueError):
            WeightedSampler(bad)


def test_uniform_sampler_over_subset():
    subset = torch.tensor([3, 10, 42, 99])
    sampler = UniformSampler(subset)
    draws = sampler.draw(40_000, torch.Generator().manual_seed(7))
    assert len(sampler) == 4 and draws.dtype == torch.int64
    assert set(draws.tolist()) == set(subset.tolist())
    counts = torch.stack([(draws == i).sum() for i in subset]).numpy()
    assert chisquare(counts).pvalue > 1e-3
    again = sampler.draw(40_000, torch.Generator().manual_seed(7))
    assert torch.equal(draws, again)
