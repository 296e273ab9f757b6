"""pytorch-ood interop: its inputs (outlier scores, labels < 0 for OOD) and its outputs (key
names, fractions) through ``OODMetrics``; the same data in both conventions gives the same
numbers. pytorch-ood is not installed: its FPR95TPR (``fpr[searchsorted(tpr, 0.95)]`` on the
ROC of the outlier scores) and AUROC are rebuilt here from sklearn as its code computes them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from bgresample import OODMetrics
from bgresample.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ID-ness scores, is_ood flags and class labels (0-9 for ID, -1 for OOD), with ties."""
    gen = torch.Generator().manual_seed(seed)
    n_id, n_ood = 300, 120
    scores = torch.cat([torch.randn(n_id, generator=gen) + 1.0, torch.randn(n_ood, generator=gen)])
    scores = (scores * 10).round() / 10
    is_ood = torch.cat([torch.zeros(n_id, dtype=torch.bool), torch.ones(n_ood, dtype=torch.bool)])
    labels = torch.where(is_ood, -1, torch.randint(0, 10, (n_id + n_ood,), generator=gen))
    order = torch.randperm(n_id + n_ood, generator=gen)
    return scores[order], is_ood[order], labels[order]


def _pytorch_ood_fpr95(outlier: np.ndarray, target: np.ndarray) -> float:
    """pytorch_ood.utils.metrics.fpr_at_tpr: the ROC of the outlier scores, OOD positive."""
    fpr, tpr, _ = roc_curve(target, outlier, drop_intermediate=False)
    idx = np.searchsorted(tpr, 0.95)
    return float(fpr[min(idx, len(fpr) - 1)])


@pytest.mark.parametrize("seed", range(4))
def test_the_same_tensors_in_both_conventions_give_the_same_numbers(seed):
    scores, is_ood, labels = _data(seed)
    ours = OODMetrics(fpr_at=(0.9, 0.99))
    theirs = OODMetrics.pytorch_ood(fpr_at=(0.9, 0.99))
    for part in torch.arange(len(scores)).split(64):  # batches, as a loop feeds them
        ours.update(scores[part], is_ood[part])
        theirs.update(-scores[part], labels[part])  # outlier scores, labels < 0 for OOD
    a, b = ours.compute(), theirs.compute()
    assert set(b) == {"AUROC", "AUPR-IN", "AUPR-OUT", "FPR95TPR", "FPR90TPR", "FPR99TPR"}
    pairs = {
        "AUROC": "auroc",
        "AUPR-IN": "aupr_in",
        "AUPR-OUT": "aupr_out",
        "FPR95TPR": "fpr95",
        "FPR90TPR": "fpr90",
        "FPR99TPR": "fpr99",
    }
    for theirs_key, ours_key in pairs.items():
        assert b[theirs_key] == pytest.approx(a[ours_key] / 100.0, abs=1e-12)
    # pytorch-ood's own FPR95TPR and AUROC, rebuilt from its code path.
    outlier, target = (-scores).numpy(), (labels < 0).numpy().astype(int)
    assert b["FPR95TPR"] == pytest.approx(_pytorch_ood_fpr95(outlier, target), abs=1e-12)
    assert b["AUROC"] == pytest.approx(roc_auc_score(target, outlier), abs=1e-12)
    # and the functions on (id_scores, ood_scores).
    id_s, ood_s = scores[~is_ood].numpy(), scores[is_ood].numpy()
    assert a["fpr90"] == pytest.approx(100 * fpr_at_tpr(id_s, ood_s, 0.9))
    assert a["auroc"] == pytest.approx(100 * auroc(id_s, ood_s))


def test_each_option_alone():
    scores, is_ood, labels = _data(7)
    ref = OODMetrics().update(scores, is_ood).compute()
    outlier = OODMetrics(scores="outlier").update(-scores, is_ood).compute()
    negative = OODMetrics(labels="negative").update(scores, labels).compute()
    fractions = OODMetrics(percent=False).update(scores, is_ood).compute()
    named = OODMetrics(keys="pytorch-ood").update(scores, is_ood).compute()
    for key, value in ref.items():
        assert outlier[key] == pytest.approx(value, abs=1e-12)
        assert negative[key] == value
        assert fractions[key] == pytest.approx(value / 100.0, abs=1e-15)
    assert named == pytest.approx(
        {
            "AUROC": ref["auroc"],
            "AUPR-IN": ref["aupr_in"],
            "AUPR-OUT": ref["aupr_out"],
            "FPR95TPR": ref["fpr95"],
        }
    )
    levels = OODMetrics(fpr_at=[0.8, 0.995]).update(scores, is_ood).compute()
    assert set(levels) == set(ref) | {"fpr80", "fpr99.5"}
    id_s, ood_s = scores[~is_ood].numpy(), scores[is_ood].numpy()
    assert levels["fpr99.5"] == 100 * fpr_at_tpr(id_s, ood_s, 0.995)
    assert levels["fpr80"] == 100 * fpr_at_tpr(id_s, ood_s, 0.8)
    assert fractions["aupr_out"] == aupr_out(id_s, ood_s)
    assert fractions["aupr_in"] == aupr_in(id_s, ood_s)


def test_defaults_are_unchanged_and_exact():
    scores, is_ood, _ = _data(2)
    id_s, ood_s = scores[~is_ood].numpy(), scores[is_ood].numpy()
    got = OODMetrics().update(scores, is_ood).compute()
    assert list(got) == ["fpr95", "auroc", "aupr", "aupr_in", "aupr_out"]
    assert got == {
        "fpr95": 100.0 * fpr_at_tpr(id_s, ood_s),
        "auroc": 100.0 * auroc(id_s, ood_s),
        "aupr": 100.0 * aupr_out(id_s, ood_s),
        "aupr_in": 100.0 * aupr_in(id_s, ood_s),
        "aupr_out": 100.0 * aupr_out(id_s, ood_s),
    }


def test_scores_of_the_other_convention_warn():
    scores, is_ood, labels = _data(3)
    with pytest.warns(UserWarning, match="pass scores='outlier'"):
        wrong = OODMetrics().update(-scores, is_ood).compute()  # pytorch-ood's outlier scores
    right = OODMetrics().update(scores, is_ood).compute()
    assert wrong["auroc"] == pytest.approx(100.0 - right["auroc"])
    with pytest.warns(UserWarning, match="pass scores='id'"):
        OODMetrics.pytorch_ood().update(scores, labels).compute()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OODMetrics.pytorch_ood().update(-scores, labels).compute()


def test_labels_of_the_other_convention_are_clear_errors():
    scores, is_ood, labels = _data(4)
    with pytest.raises(ValueError, match="pass labels='negative'"):
        OODMetrics().update(scores, labels)
    with pytest.raises(ValueError, match="for OOD flags use labels='is_ood'"):
        OODMetrics(labels="negative").update(scores, is_ood)
    with pytest.raises(ValueError, match=r"0 OOD \(OOD inputs are marked by labels < 0\)"):
        OODMetrics(labels="negative").update(scores, labels.abs()).compute()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": "ood"}, "scores must be 'id'"),
        ({"labels": "pytorch"}, "labels must be 'is_ood'"),
        ({"keys": "torch"}, "keys must be 'bgresample' or 'pytorch-ood'"),
        ({"keys": "pytorch-ood", "convention": "id-positive"}, "use convention='ood-positive'"),
        ({"fpr_at": (95,)}, r"fpr_at must hold TPR levels in \(0, 1\]"),
        ({"fpr_at": 0.0}, r"fpr_at must hold TPR levels in \(0, 1\]"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OODMetrics(**kwargs)
    with pytest.raises(TypeError, match="percent must be True or False"):
        OODMetrics(percent="yes")
