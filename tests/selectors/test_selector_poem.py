"""POEM: the Bayesian linear regression matches the closed-form posterior, Thompson samples
follow it, and one epoch keeps the candidates closest to the sampled boundary."""

import torch
from selector_toys import TwoPixelModel
from torch import Tensor

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.rng import generator
from bgresample.runtime.accel import Accel
from bgresample.selectors import POEM, SelectionContext
from bgresample.selectors.poem import BayesianLinearRegression, design


def _data() -> tuple[Tensor, Tensor]:
    phi = torch.tensor([[1.0, 0.5], [0.2, 1.0], [-1.0, 0.3], [0.4, -0.7], [1.5, 1.5]])
    y = torch.tensor([1.0, -1.0, 0.5, 2.0, -0.3])
    return phi.double(), y.double()


def test_posterior_is_the_closed_form():
    phi, y = _data()
    prior_var, noise_var = 2.0, 0.5
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) / prior_var + phi.T @ phi / noise_var)
    mean = cov @ phi.T @ y / noise_var
    blr = BayesianLinearRegression(2, prior_var, noise_var)
    blr.update(phi, y)
    assert torch.allclose(blr.covariance(), cov, atol=1e-12)
    assert torch.allclose(blr.mean(), mean, atol=1e-12)
    seq = BayesianLinearRegression(2, prior_var, noise_var)
    seq.update(phi[:2], y[:2])
    seq.update(phi[2:], y[2:])
    assert torch.allclose(seq.mean(), mean, atol=1e-12)


def test_thompson_samples_follow_the_posterior():
    phi, y = _data()
    blr = BayesianLinearRegression(2, 1.0, 1.0)
    blr.update(phi, y)
    g = torch.Generator().manual_seed(0)
    w = torch.stack([blr.sample(g) for _ in range(2000)])
    assert torch.allclose(w.mean(0), blr.mean(), atol=0.03)
    assert torch.allclose(w.T.cov(), blr.covariance(), atol=0.03)


def test_poem_keeps_the_candidates_closest_to_the_sampled_boundary():
    g = torch.Generator().manual_seed(0)
    pool = ImageArray(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8, generator=g))
    train = LabeledImages(
        torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.zeros(30, dtype=torch.long),
    )
    ctx = SelectionContext(pool, train, Accel(torch.device("cpu")), seed=5, gamma=0.1, batch_size=4)
    poem = POEM(ctx, candidates=4.0, prior_var=1.0, noise_var=1.0)
    model = TwoPixelModel()
    got = poem.select_epoch(model, epoch=0)
    cand = torch.randperm(100, generator=generator(5, POEM.streams["candidates"], 0))[:40]
    x = pool.data[cand, 0, 0, :2].float() / 255
    phi = design((x - 0.5) / 0.25)
    w = BayesianLinearRegression(3).sample(generator(5, POEM.streams["thompson"], 0))
    expected = cand[(phi @ w).abs().argsort()[:10]]
    assert torch.equal(got, expected.sort().values)
    assert poem.forwards == {"setup": 0, "during": 40, "id": 10}
    # the posterior absorbed 10 ID features (target -1) and the 10 kept outliers (+1)
    assert poem.blr is not None
    assert torch.allclose(poem.blr.precision.trace(), torch.tensor(3.0 + 20 * 2.0).double())
