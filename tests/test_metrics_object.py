"""OODMetrics accumulates batches and gives what ood_metrics gives on all of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bgresample import OODMetrics
from bgresample.metrics import aupr_in, aupr_out, ood_metrics


def test_batches_equal_one_call():
    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(1, 1, 300), rng.normal(-1, 1, 200)
    scores = np.concatenate([id_s, ood_s])
    is_ood = np.r_[np.zeros(300, bool), np.ones(200, bool)]
    order = rng.permutation(500)
    metrics = OODMetrics()
    for part in np.array_split(order, 7):
        metrics.update(torch.from_numpy(scores[part]), torch.from_numpy(is_ood[part]))
    got = metrics.compute()
    ref = ood_metrics(id_s, ood_s)
    for key in ("fpr95", "auroc", "aupr"):
        assert got[key] == pytest.approx(ref[key], abs=1e-9)
    assert got["aupr_out"] == pytest.approx(100 * aupr_out(id_s, ood_s))
    assert got["aupr_in"] == pytest.approx(100 * aupr_in(id_s, ood_s))
    assert got["aupr"] == got["aupr_out"]  # the paper's convention: OOD positive
    other = OODMetrics("id-positive").update(scores, is_ood.astype(int)).compute()
    assert other["aupr"] == other["aupr_in"] and other["auroc"] == pytest.approx(got["auroc"])


def test_perfect_separation_and_reset():
    m = OODMetrics().update([0.9, 0.8, 0.1], [0, 0, 1])
    assert m.compute() == pytest.approx(
        {"fpr95": 0.0, "auroc": 100.0, "aupr": 100.0, "aupr_in": 100.0, "aupr_out": 100.0}
    )
    with pytest.raises(ValueError, match="no scores"):
        m.reset().compute()


def test_bad_input():
    with pytest.raises(ValueError, match="3 scores but 2"):
        OODMetrics().update([1.0, 2.0, 3.0], [0, 1])
    with pytest.raises(ValueError, match="booleans or 0/1"):
        OODMetrics().update([1.0, 2.0], [0, 2])
    with pytest.raises(ValueError, match="both ID and OOD"):
        OODMetrics().update([1.0, 2.0], [0, 0]).compute()
    with pytest.raises(ValueError, match="convention"):
        OODMetrics("ood-negative")
