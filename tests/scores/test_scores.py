"""The OOD scores beyond MSP (MaxLogit, Energy, ODIN, Mahalanobis, KNN) and `evaluate --scores`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from bgresample.cli import main
from bgresample.data.embedded import OOD_SETS
from bgresample.scores import (
    SCORES,
    ScoreSpec,
    energy,
    fit_knn,
    fit_mahalanobis,
    get_score,
    knn,
    mahalanobis,
    max_logit,
    msp,
    odin,
    odin_perturb,
    parse_scores,
)

LOGITS = torch.tensor(
    [
        [0.0, 0.0, 0.0, 0.0],
        [math.log(3.0), 0.0, 0.0, 0.0],
        [2.0, -1.0, 5.0, 0.5],
    ],
    dtype=torch.float64,
)


def test_max_logit_and_energy_hand_values():
    assert torch.equal(
        max_logit(LOGITS), torch.tensor([0.0, math.log(3.0), 5.0], dtype=LOGITS.dtype)
    )
    # T = 1: logsumexp. Row 0: log 4; row 1: log(3 + 3) = log 6.
    row2 = math.log(math.exp(2) + math.exp(-1) + math.exp(5) + math.exp(0.5))
    want = torch.tensor([math.log(4.0), math.log(6.0), row2], dtype=LOGITS.dtype)
    assert torch.allclose(energy(LOGITS), want, atol=1e-12)
    # T = 2: 2 * log sum exp(l / 2); the energy is E = -T logsumexp(l / T), returned negated.
    t = 2.0
    row2_t = t * math.log(sum(math.exp(v / t) for v in (2.0, -1.0, 5.0, 0.5)))
    want_t = torch.tensor(
        [t * math.log(4.0), t * math.log(math.sqrt(3.0) + 3.0), row2_t], dtype=LOGITS.dtype
    )
    assert torch.allclose(energy(LOGITS, T=t), want_t, atol=1e-12)
    e = -t * torch.logsumexp(LOGITS / t, dim=-1)
    assert torch.allclose(energy(LOGITS, T=t), -e)
    # Small T tends to the max logit; MSP on the same logits for reference.
    assert torch.allclose(energy(LOGITS, T=1e-3), max_logit(LOGITS), atol=1e-2)
    assert torch.allclose(msp(LOGITS)[:2], torch.tensor([0.25, 0.5], dtype=LOGITS.dtype))
    with pytest.raises(ValueError):
        energy(LOGITS, T=0.0)


def _toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def test_odin_perturbation_follows_gradient_sign():
    model = _toy_model()
    # Multiples of 1/4 and a power-of-two eps: x' - x is exact in float64.
    x = torch.randint(-8, 8, (5, 6), generator=torch.Generator().manual_seed(1)).double() / 4
    eps, t = 2.0**-7, 10.0
    xg = x.clone().requires_grad_(True)
    lms = torch.log_softmax(model(xg) / t, dim=-1).amax(dim=-1).sum()
    (grad,) = torch.autograd.grad(lms, xg)
    x_pert = odin_perturb(model, x, T=t, eps=eps)
    assert torch.equal(x_pert - x, eps * torch.sign(grad))
    assert (grad != 0).any()
    assert all(p.grad is None for p in model.parameters())
    # The perturbation raises the tempered MSP; eps = 0 is the tempered MSP itself.
    base = odin(model, x, T=t, eps=0.0)
    assert torch.allclose(base, torch.softmax(model(x).detach() / t, dim=-1).amax(-1))
    assert (odin(model, x, T=t, eps=eps) > base).all()


def test_odin_restores_training_mode():
    model = _toy_model().train()
    odin(model, torch.zeros(2, 6, dtype=torch.float64), T=1000.0, eps=0.0014)
    assert model.training


def test_mahalanobis_closed_form():
    # Two classes in 2-D. Class 0 at (0,0) +- (1,0); class 1 at (4,2) +- (0,2).
    feats = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [4.0, 0.0], [4.0, 4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    state = fit_mahalanobis(feats, labels)
    assert torch.allclose(state.means, torch.tensor([[0.0, 0.0], [4.0, 2.0]], dtype=torch.float64))
    # Tied covariance (1/N) sum (f - mu)(f - mu)^T = diag(2, 8) / 4 = diag(0.5, 2).
    assert torch.allclose(
        state.precision, torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    )
    q = torch.tensor([[1.0, 1.0], [4.0, 2.0], [2.0, 1.0]])
    # d0 = 2 x^2 + 0.5 y^2, d1 = 2 (x - 4)^2 + 0.5 (y - 2)^2 (squared distances).
    d0 = torch.tensor([2.5, 34.0, 8.5], dtype=torch.float64)
    d1 = torch.tensor([18.5, 0.0, 8.5], dtype=torch.float64)
    want = -torch.minimum(d0, d1)
    assert torch.allclose(mahalanobis(q, state), want, atol=1e-10)


def test_knn_by_hand():
    # Normalised train features: angles 0, 90, 180 degrees on the unit circle (scale is removed).
    train = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    state = fit_knn(train)
    q = torch.tensor([[5.0, 0.0], [0.0, -1.0]])
    # Query (1, 0): distances 0, sqrt 2, 2. Query (0, -1): sqrt 2, 2, sqrt 2.
    r2 = math.sqrt(2.0)
    assert torch.allclose(knn(q, state, k=1), torch.tensor([0.0, -r2]), atol=1e-5)
    assert torch.allclose(knn(q, state, k=2), torch.tensor([-r2, -r2]), atol=1e-5)
    assert torch.allclose(knn(q, state, k=2, chunk=1), knn(q, state, k=2))
    # k is capped at the bank size: the default k = 50 means the farthest of the 3 here.
    assert torch.allclose(knn(q, state), torch.tensor([-2.0, -2.0]), atol=1e-5)


def test_registry_and_parse():
    assert set(SCORES) >= {"msp", "maxlogit", "energy", "odin", "mahalanobis", "knn"}
    needs = {n: get_score(n).needs for n in ("msp", "maxlogit", "energy", "odin", "mahalanobis")}
    assert needs == {
        "msp": "logits",
        "maxlogit": "logits",
        "energy": "logits",
        "odin": "model",
        "mahalanobis": "features",
    }
    assert get_score("knn").fit is fit_knn
    assert torch.equal(get_score("energy")(LOGITS), energy(LOGITS))
    assert parse_scores(" msp, energy,msp ,") == ["msp", "energy"]
    with pytest.raises(ValueError, match="unknown score 'entropy'; valid names: .*knn"):
        parse_scores("msp,entropy")
    with pytest.raises(ValueError):
        parse_scores("")


def test_plain_callable_registers_as_logits_score(monkeypatch):
    monkeypatch.setitem(SCORES, "neg_max_logit", lambda z: -z.amax(-1))
    spec = get_score("neg_max_logit")
    assert isinstance(spec, ScoreSpec) and spec.needs == "logits"
    assert torch.equal(spec(LOGITS), -max_logit(LOGITS))


@pytest.fixture(scope="module")
def tiny_scores(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("scores_data")
    args = ["--quiet", "--device", "cpu"]
    for s in (
        "data.embedded.pool_size=600",
        "data.embedded.ood_size=60",
        "data.embedded.noise_ood_size=200",
        "pretrain.epochs=1",
        "pretrain.checkpoint_every=0",
    ):
        args += ["--set", s]
    return [*args, "--data-root", str(root)]


def test_evaluate_several_scores_end_to_end(tiny_scores, tmp_path, capsys):
    pre = tmp_path / "A"
    assert main(["pretrain", "--out", str(pre), *tiny_scores]) == 0
    names = ["msp", "energy", "mahalanobis", "knn"]
    ev = tmp_path / "B"
    ckpt = str(pre / "pretrain.safetensors")
    argv = ["evaluate", "--checkpoint", ckpt, "--scores", ",".join(names), "--out", str(ev)]
    assert main([*argv, *tiny_scores]) == 0
    printed = capsys.readouterr().out
    for n in names:
        assert f"score: {n}" in printed and f"model:{n}" in printed
    res = json.loads((ev / "results.json").read_text())
    assert res["scores"] == names
    model = res["variants"]["model"]
    assert model["score"] == "msp" and 0 <= model["accuracy"] <= 100
    assert set(model["scores"]) == set(names)
    assert model["ood"] == model["scores"]["msp"]["ood"]
    for n in names:
        per = model["scores"][n]
        assert set(per["ood"]) == set(OOD_SETS)
        blocks = [*per["ood"].values(), per["average"], per["average_no_noise"]]
        for metrics in blocks:
            assert set(metrics) == {"fpr95", "auroc", "aupr", "aupr_in", "aupr_out"}
            for m in metrics.values():
                assert 0 <= m["mean"] <= 100 and m["std"] >= 0
    with np.load(ev / "scores_model.npz") as raw:
        keys = set(raw.files)
        assert {"id", *OOD_SETS} <= keys and f"knn:{OOD_SETS[0]}" in keys
        assert len(raw["energy:id"]) == len(raw["id"])
        assert len(raw[f"knn:{OOD_SETS[0]}"]) == len(raw[f"{OOD_SETS[0]}__idx"])


def test_evaluate_unknown_score_is_one_line(tiny_scores, tmp_path, capsys):
    argv = ["evaluate", "--checkpoint", str(tmp_path / "x.safetensors"), "--scores", "msp,foo"]
    assert main([*argv, "--out", str(tmp_path / "o"), *tiny_scores]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "unknown score 'foo'" in err and "mahalanobis" in err
    assert not (tmp_path / "o").exists()
