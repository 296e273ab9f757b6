"""Hopfield Boosting's energies on hand-made 2-d patterns against a direct numpy computation of
the authors' formulas (``energy.py``: ``Energy``, ``BorderEnergy``, ``OneSidedEnergy``;
``util.logmeanexp``), the E_b loss on a mini-batch, the projection head, and the Delta score
fitted on the patterns a model stores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bgresample.detector import Detector
from bgresample.losses import BACKGROUND_LOSSES, HopfieldBoostingLoss, HopfieldHead, HopfieldOptions
from bgresample.losses.hopfield import ProjectedClassifier, add_projection_head, attach_stored_head
from bgresample.scores import get_score
from bgresample.scores.hopfield import (
    border_energy,
    chunked_border_energy,
    fit_hopfield,
    hopfield,
    hopfield_delta,
)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# ID patterns near 0 degrees, auxiliary patterns near 90 (unequal sizes, unequal norms)
X = np.array([[2.0, 0.0], [1.0, 0.1], [3.0, -0.4]])
O = np.array([[0.0, 1.0], [0.2, 2.0]])
Q = np.array([_unit(a) for a in (0, 20, 45, 70, 90, 180)]) * np.array(
    [[1.0], [2.0], [0.5], [1], [3], [1]]
)


def _np_lme(beta: float, s: np.ndarray) -> np.ndarray:
    """Their logmeanexp: 1/beta logsumexp(beta s) - 1/beta log n, over the last axis."""
    m = s.max(axis=-1, keepdims=True)
    lse = (m[..., 0] * beta + np.log(np.exp(beta * (s - m)).sum(-1))) / beta
    return lse - np.log(s.shape[-1]) / beta


def _np_energies(q: np.ndarray, x: np.ndarray, o: np.ndarray, beta: float):
    """(their BorderEnergy, their OneSidedEnergy) of the queries, step by step as energy.py."""
    n = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    q, x, o = n(q), n(x), n(o)
    attn = q @ np.concatenate([x, o]).T
    a_energy = -_np_lme(beta, attn[:, : len(x)])
    b_energy = -_np_lme(beta, attn[:, len(x) :])
    union = -np.logaddexp(-beta * a_energy, -beta * b_energy) / beta + np.log(2) / beta
    return a_energy + b_energy - 2 * union, a_energy - b_energy


@pytest.mark.parametrize("beta", [1.0, 4.0, 16.0])
def test_border_energy_and_delta_against_the_authors_formulas(beta: float) -> None:
    border, one_sided = _np_energies(Q, X, O, beta)
    q, x, o = (torch.tensor(a) for a in (Q, X, O))
    e = border_energy(q, x, o, beta)
    # E_b (paper sign) = -(their border energy) - 2 log(2) / beta
    np.testing.assert_allclose(e.numpy(), -border - 2 * math.log(2) / beta, rtol=0, atol=1e-12)
    # Delta = -(their one-sided energy): their ood_tester ends with Negative()
    delta = hopfield_delta(q, x, o, beta)
    np.testing.assert_allclose(delta.numpy(), -one_sided, rtol=0, atol=1e-12)
    # the closed form through Delta, and the paper's log-sum-exp E_b where |X| = |O|
    np.testing.assert_allclose(
        e.numpy(), -2 / beta * np.log(2 * np.cosh(beta * delta.numpy() / 2)), atol=1e-12
    )
    assert delta[0] > 0 > delta[4]  # closer to X at 0 degrees, to O at 90
    assert (e < 0).all() and e.max() <= -2 * math.log(2) / beta + 1e-15
    x2 = torch.tensor(X[:2])

    def paper_lse(s: np.ndarray) -> np.ndarray:
        return _np_lme(beta, s) + np.log(s.shape[-1]) / beta

    n = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    qn, xn, on = n(Q), n(X[:2]), n(O)
    paper = -2 * paper_lse(qn @ np.concatenate([xn, on]).T) + paper_lse(qn @ xn.T)
    paper += paper_lse(qn @ on.T)
    got = border_energy(q, x2, o, beta).numpy()
    np.testing.assert_allclose(got, paper, rtol=0, atol=1e-12)
    assert torch.equal(chunked_border_energy(q, x, o, beta, chunk=4), border_energy(q, x, o, beta))


def test_the_loss_is_the_mean_border_energy_of_the_batch_with_its_own_memories() -> None:
    beta = 4.0
    emb_id, emb_bg = torch.tensor(X, requires_grad=True), torch.tensor(O, requires_grad=True)
    loss = HopfieldBoostingLoss(beta=beta)(emb_id, emb_bg)
    border, _ = _np_energies(np.concatenate([X, O]), X, O, beta)
    # their ood_loss: -mean(border energy of cat(emb_in, emb_out) with a = emb_in, b = emb_out)
    assert loss.item() == pytest.approx(-border.mean() - 2 * math.log(2) / beta, abs=1e-12)
    per = HopfieldBoostingLoss(beta=beta, reduction="none")(emb_id, emb_bg)
    assert per.shape == (5,) and per.mean().item() == pytest.approx(loss.item(), abs=1e-15)
    loss.backward()  # the gradient reaches both batches, through queries and memories
    assert emb_id.grad.abs().sum() > 0 and emb_bg.grad.abs().sum() > 0
    # given memories replace the batch's own (what DDP passes: the gathered global batch)
    other = HopfieldBoostingLoss(beta=beta)(emb_id, emb_bg, torch.tensor(X[:1]), torch.tensor(O))
    border1, _ = _np_energies(np.concatenate([X, O]), X[:1], O, beta)
    assert other.item() == pytest.approx(-border1.mean() - 2 * math.log(2) / beta, abs=1e-12)
    with pytest.raises(ValueError, match="embeddings of one D"):
        HopfieldBoostingLoss()(emb_id, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="beta"):
        HopfieldBoostingLoss(beta=0.0)


class Tiny(nn.Module):
    """features = the input's first 3 values; fc on them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def test_the_projection_head_is_the_authors_mlp_seeded_and_frozen_by_default() -> None:
    a, b = Tiny(), Tiny()
    state = torch.get_rng_state()
    head = add_projection_head(a, hidden_dim=5, out_dim=4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    add_projection_head(b, hidden_dim=5, out_dim=4, seed=3)
    for p, q in zip(a.hopfield.parameters(), b.hopfield.parameters(), strict=True):
        assert torch.equal(p, q) and not p.requires_grad
    lin1, relu, lin2 = head.head
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (3, 5, 4)
    assert isinstance(relu, nn.ReLU) and head.beta.item() == 4.0
    # PyTorch's default nn.Linear initialisation from that seed
    torch.manual_seed(3)
    ref = HopfieldHead(3, 5, 4)
    torch.set_rng_state(state)
    assert all(torch.equal(p, q) for p, q in zip(head.parameters(), ref.parameters(), strict=True))
    assert add_projection_head(a, 7, 7, train=True) is head  # kept, now trainable
    assert all(p.requires_grad for p in head.parameters())
    x = torch.randn(6, 3)
    logits, emb = ProjectedClassifier(a)(x)
    assert torch.equal(logits, a(x)) and torch.equal(emb, head(x))
    loss = HopfieldBoostingLoss(head_hidden=5, head_dim=4, train_head=True)
    assert loss.add_head(Tiny(), seed=3).head[0].weight.requires_grad
    with pytest.raises(ValueError, match="features"):
        add_projection_head(nn.Linear(3, 2))


def test_delta_score_reads_the_patterns_the_model_stores() -> None:
    model = Tiny()
    head = add_projection_head(model, hidden_dim=5, out_dim=4, beta=2.0, seed=0)
    with pytest.raises(ValueError, match="has none"):
        fit_hopfield(torch.zeros(1, 3), None, model)
    g = torch.Generator().manual_seed(1)
    ids, aux = torch.randn(7, 4, generator=g), torch.randn(5, 4, generator=g)
    head.store(ids, aux)
    spec = get_score("hopfield")
    assert spec.needs == "features" and spec.fit_model and spec.fit is fit_hopfield
    state = spec.fit_state(torch.zeros(1, 3), torch.zeros(1), model)
    assert state.beta == 2.0
    f = torch.randn(9, 3, generator=g)
    with torch.no_grad():
        z = head(f).double().numpy()
    _, one_sided = _np_energies(z, ids.double().numpy(), aux.double().numpy(), 2.0)
    got = hopfield(f, state)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), -one_sided, rtol=0, atol=1e-6)
    # chunks of 2 queries: the same values (a BLAS may round blocks of other sizes otherwise)
    torch.testing.assert_close(hopfield(f, state, chunk=2), got, rtol=0, atol=1e-6)
    _, sharp = _np_energies(z, ids.double().numpy(), aux.double().numpy(), 8.0)
    np.testing.assert_allclose(hopfield(f, state, beta=8.0).numpy(), -sharp, atol=1e-6)
    # the Detector fits it the same way (the loader's ID data are not used)
    x = torch.cat([f, torch.zeros(9, 1)], dim=1)
    detector = Detector(model, "hopfield").fit([(x, torch.zeros(9))])
    assert torch.equal(detector.score(x), got)
    # a checkpoint's state dict loads into a plain model given an empty head of its shapes
    fresh = Tiny()
    attach_stored_head(fresh, {k: v.shape for k, v in model.state_dict().items()})
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fit_hopfield(f, None, fresh).aux_patterns, state.aux_patterns)
    plain = Tiny()
    attach_stored_head(plain, {"fc.weight": (2, 3)})
    assert not hasattr(plain, "hopfield")


def test_the_loss_is_registered_with_its_options_section() -> None:
    spec = BACKGROUND_LOSSES["hopfield"]
    assert spec.embeddings and spec.score == "hopfield" and spec.section == "hopfield-loss"
    opts = spec.make_options()
    assert opts == HopfieldOptions(beta=4.0, alpha=0.5, head_hidden=256, head_dim=128)
    assert not opts.train_head
    loss = spec.build(opts)
    assert isinstance(loss, HopfieldBoostingLoss) and loss.beta == 4.0 and loss.head_dim == 128


def test_a_checkpoint_with_a_head_and_stored_patterns_loads_as_it_was_saved(tmp_path):
    import bgresample
    from bgresample.checkpoint import save_model
    from bgresample.models import build_model

    model = build_model("small_cnn", 3, {}, 32)
    head = add_projection_head(model, 16, 8, seed=0)
    head.store(torch.randn(5, 8), torch.randn(4, 8))
    save_model(tmp_path / "m.safetensors", model)
    loaded, _ = bgresample.load_checkpoint(tmp_path / "m.safetensors")
    assert isinstance(loaded.hopfield, HopfieldHead)
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(loaded.hopfield(loaded.features(x)), head(model.features(x)))
