"""Detector: a model and a score as one object, equal to calling the score functions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bgresample import Detector, OODMetrics, energy, msp
from bgresample.scores import fit_knn, fit_mahalanobis, knn, mahalanobis, odin


class _Net(nn.Module):
    """A classifier with ``features`` (as bgresample's models) and a dropout that eval disables."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5))
        self.fc = nn.Linear(8, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _batches(n: int = 4, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen))
        for _ in range(n)
    ]


def test_logits_scores_equal_the_functions_in_eval_mode_and_restore_the_mode():
    model = _Net().train()
    x = torch.randn(10, 6)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    assert torch.equal(Detector(model).score(x), msp(logits))
    assert torch.equal(Detector(model, "energy", T=2.0).score(x), energy(logits, T=2.0))
    assert torch.equal(Detector(model, "energy").predict(x), -energy(logits))  # outlier scores
    assert model.training


def test_features_scores_need_fit_and_equal_the_functions():
    model = _Net()
    train = _batches()
    x = torch.randn(10, 6)
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.features(xb) for xb, _ in train])
        labels = torch.cat([yb for _, yb in train])
        test_feats = model.features(x)
    model.train()
    maha = Detector(model, "mahalanobis")
    with pytest.raises(ValueError, match="must be fitted first"):
        maha.score(x)
    assert maha.fit(train) is maha
    expected = mahalanobis(test_feats, fit_mahalanobis(feats, labels))
    assert torch.equal(maha.score(x), expected)
    near = Detector(model, "knn", features=model.features, k=3).fit(train)
    assert torch.equal(near.score(x), knn(test_feats, fit_knn(feats), k=3))


def test_odin_and_fit_is_a_no_op_for_scores_without_state():
    model = _Net()
    x = torch.randn(5, 6)
    detector = Detector(model, "odin", T=10.0, eps=0.01)
    assert detector.fit(_batches()) is detector
    assert torch.equal(detector.score(x), odin(model, x, T=10.0, eps=0.01))


def test_with_pytorch_ood_metrics_gives_the_same_numbers():
    model = _Net()
    ours, theirs = OODMetrics(), OODMetrics.pytorch_ood()
    detector = Detector(model)
    for (x, y), is_ood in zip(_batches(4, 1), (False, True, False, True), strict=True):
        x = x * 0.05 if is_ood else x  # near the bias: low MSP
        ours.update(detector.score(x), torch.full((len(x),), is_ood))
        theirs.update(detector.predict(x), torch.where(torch.tensor(is_ood), -1, y))
    a, b = ours.compute(), theirs.compute()
    assert b["AUROC"] == pytest.approx(a["auroc"] / 100) and b["FPR95TPR"] == a["fpr95"] / 100


def test_misuse_is_refused_at_construction():
    model = _Net()
    with pytest.raises(ValueError, match="unknown score 'nope'"):
        Detector(model, "nope")
    with pytest.raises(TypeError, match=r"score 'msp' takes no parameter\(s\) \['T'\]"):
        Detector(model, "msp", T=2.0)
    with pytest.raises(ValueError, match="needs penultimate features"):
        Detector(nn.Linear(6, 3), "knn")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        Detector(lambda x: x)
    with pytest.raises(TypeError, match="score must be a score's name"):
        Detector(model, msp)
    with pytest.raises(ValueError, match=r"loader of \(x, y\) batches"):
        Detector(model, "mahalanobis").fit([torch.randn(4, 6)])
    with pytest.raises(ValueError, match="empty loader"):
        Detector(model, "mahalanobis").fit([])
