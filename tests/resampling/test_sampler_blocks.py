"""WeightedSampler's two-level cdf: same draws as a flat float64 cdf, tails, edges, devices."""

import pytest
import torch

from bgresample.resampling import BackgroundWeights, WeightedSampler


def _flat(masses: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Reference: a flat float64 cdf of the same (float32-rounded) masses."""
    cdf = torch.cumsum(masses.double(), 0)
    return torch.searchsorted(cdf, u * cdf[-1], right=True)


@pytest.mark.parametrize("block", [1, 4, 64, 1000])
def test_same_items_as_a_flat_float64_cdf(block):
    gen = torch.Generator().manual_seed(0)
    n = 5003  # not a multiple of the block
    masses = torch.rand(n, generator=gen) ** 8  # spread over many orders of magnitude
    masses[::7] = 0.0
    masses[:50] *= 1e6  # a heavy head
    sampler = WeightedSampler(masses, block=block)
    u = torch.rand(100_000, dtype=torch.float64, generator=gen)
    assert torch.equal(sampler.locate(u), _flat(masses, u))
    assert len(sampler) == n


def test_tiny_items_beside_huge_ones_keep_their_rate():
    # One block holds an item 1e9 times heavier than the 63 others; the light ones must still
    # be drawn at their own rate (a float32 running sum inside the block would lose them).
    masses = torch.ones(64 * 4)
    masses[0] = 1e9
    sampler = WeightedSampler(masses, block=64)
    edges = torch.cumsum(masses.double(), 0)
    total = edges[-1].item()
    u = (edges[:-1] + 0.5) / total  # one uniform in the middle of each item's interval
    assert torch.equal(sampler.locate(u), torch.arange(1, 256))


def test_edges_of_the_unit_interval_and_zero_mass():
    masses = torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, 1e-30, 3.0, 0.0, 0.0, 0.0])
    sampler = WeightedSampler(masses, block=3)
    u = torch.tensor([0.0, 1e-300, 0.4, 0.4 + 1e-17, 1.0 - 2**-53, 1.0], dtype=torch.float64)
    got = sampler.locate(u)
    assert torch.all(masses[got] > 0)
    assert got[0] == 2 and got[-1] == 6
    draws = sampler.draw(100_000, torch.Generator().manual_seed(1))
    assert set(draws.tolist()) <= {2, 5, 6}


def test_draw_uses_the_cpu_generator():
    sampler = WeightedSampler(torch.rand(1000, generator=torch.Generator().manual_seed(2)))
    a = sampler.draw(128, torch.Generator().manual_seed(3))
    u = torch.rand(128, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, sampler.locate(u))
    assert a.device == sampler.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_draws_on_gpu_and_cpu():
    module = BackgroundWeights(100_000, eps=0.5)
    with torch.no_grad():
        module.omega.normal_(generator=torch.Generator().manual_seed(4))
    cpu = WeightedSampler(module.masses())
    gpu = WeightedSampler(module.to("cuda").masses())
    assert gpu.device.type == "cuda"
    for seed in range(5):
        a = cpu.draw(128, torch.Generator().manual_seed(seed))
        b = gpu.draw(128, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b.cpu())


def test_memory_and_masses_input():
    module = BackgroundWeights(10_000, eps=0.5)
    with torch.no_grad():
        module.omega.normal_(generator=torch.Generator().manual_seed(5))
    masses = module.masses()
    assert masses.dtype == torch.float32
    sampler = WeightedSampler(masses)
    assert sampler.nbytes / len(sampler) < 4.2  # 4 bytes per item + 8 per block of 64
    wide = WeightedSampler(module.probs(), dtype=torch.float64)
    assert wide.nbytes / len(wide) < 8.2
    u = torch.rand(10_000, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    same = sampler.locate(u) == wide.locate(u)  # float32 vs float64 masses: rounding only
    assert same.float().mean() > 0.999
    huge = torch.tensor([1e300, 1e299, 0.0], dtype=torch.float64)  # float32 overflow
    assert set(WeightedSampler(huge).draw(1000).tolist()) == {0, 1}
    with pytest.raises(ValueError):
        WeightedSampler(torch.tensor([1.0, float("inf")]))
