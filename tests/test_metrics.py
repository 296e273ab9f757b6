"""OOD metrics and the evaluation protocol, against hand values and independent implementations."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bgresample.metrics import (
    OODMetrics,
    accuracy,
    aupr_in,
    aupr_out,
    auroc,
    evaluate_protocol,
    fpr_at_tpr,
    ood_metrics,
    protocol_indices,
    summarize,
)

ID = np.array([0.9, 0.8, 0.8, 0.3])
OOD = np.array([0.8, 0.2, 0.1, 0.1])


def test_hand_values_with_ties():
    # OOD-positive: flag as OOD when score <= t; thresholds are the distinct scores.
    #   t=0.1: OOD 2/4, ID 0/4   t=0.2: OOD 3/4, ID 0/4   t=0.3: OOD 3/4, ID 1/4
    #   t=0.8: OOD 4/4, ID 3/4 (the tied 0.8s move together) -> FPR95 = 0.75.
    assert fpr_at_tpr(ID, OOD) == 0.75
    # ID-positive: accept as ID when score >= t.
    #   t=0.9: ID 1/4, OOD 0/4   t=0.8: ID 3/4, OOD 1/4   t=0.3: ID 4/4, OOD 1/4 -> FPR95 = 0.25.
    assert fpr_at_tpr(ID, OOD, convention="id-positive") == 0.25
    # AUROC = P(id > ood) + P(tie)/2 over 16 pairs: 0.9 beats 4; each 0.8 beats 3 and ties 1
    # (3.5 each); 0.3 beats 3 -> (4 + 7 + 3) / 16 = 0.875.
    assert auroc(ID, OOD) == pytest.approx(0.875)
    # AUPR-Out = sum dRecall * Precision, OOD positive, t ascending on score:
    #   t=0.1: R .5 P 1; t=0.2: R .75 P 1; t=0.3: R .75; t=0.8: R 1 P 4/7 -> .5 + .25 + .25 * 4/7.
    assert aupr_out(ID, OOD) == pytest.approx(0.5 + 0.25 + 0.25 * 4 / 7)
    # AUPR-In, ID positive, t descending: t=0.9: R .25 P 1; t=0.8: R .75 P 3/4; t=0.3: R 1 P 4/5.
    assert aupr_in(ID, OOD) == pytest.approx(0.25 + 0.5 * 0.75 + 0.25 * 0.8)
    both = {"aupr_in": 82.5, "aupr_out": 100 * (0.75 + 1 / 7)}  # under their own names
    assert ood_metrics(ID, OOD) == pytest.approx(
        {"fpr95": 75.0, "auroc": 87.5, "aupr": 100 * (0.75 + 1 / 7), **both}
    )
    assert ood_metrics(ID, OOD, "id-positive") == pytest.approx(
        {"fpr95": 25.0, "auroc": 87.5, "aupr": 82.5, **both}
    )


def test_conventions_differ_on_asymmetric_example():
    # ID = 1..20; OOD = 19 zeros and one outlier scoring 100 (more ID-like than any ID point).
    # OOD-positive: t=0 flags 19/20 = 95% of OOD and no ID -> 0.0.
    # ID-positive: accepting >= 95% of ID needs t=2 (19/20 ID), which also accepts the 100 -> 1/20.
    id_scores = np.arange(1.0, 21.0)
    ood_scores = np.r_[np.zeros(19), 100.0]
    assert fpr_at_tpr(id_scores, ood_scores, convention="ood-positive") == 0.0
    assert fpr_at_tpr(id_scores, ood_scores, convention="id-positive") == 0.05


def _fpr95_numpy(id_scores, ood_scores, convention):
    """Sweep the distinct scores as thresholds; the first that reaches TPR >= 0.95 wins."""
    thresholds = np.unique(np.r_[id_scores, ood_scores])
    if convention == "ood-positive":  # flag OOD when score <= t, t ascending
        for t in thresholds:
            if np.mean(ood_scores <= t) >= 0.95:
                return np.mean(id_scores <= t)
    for t in thresholds[::-1]:  # accept ID when score >= t, t descending
        if np.mean(id_scores >= t) >= 0.95:
            return np.mean(ood_scores >= t)
    raise AssertionError("unreachable")


def _auroc_numpy(id_scores, ood_scores):
    diff = id_scores[:, None] - ood_scores[None, :]
    return np.mean(diff > 0) + 0.5 * np.mean(diff == 0)


def _ap_numpy(pos_stat, neg_stat):
    """Average precision: sum over distinct thresholds (descending) of dRecall * precision."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(np.r_[pos_stat, neg_stat])[::-1]:
        tp, fp = np.sum(pos_stat >= t), np.sum(neg_stat >= t)
        recall = tp / pos_stat.size
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_independent_implementations(seed):
    rng = np.random.default_rng(seed)
    # Rounding creates many ties between and within the sets.
    id_scores = np.round(rng.normal(1.0, 1.0, size=rng.integers(20, 200)), 1)
    ood_scores = np.round(rng.normal(0.0, 1.0, size=rng.integers(20, 200)), 1)
    for convention in ("ood-positive", "id-positive"):
        assert fpr_at_tpr(id_scores, ood_scores, convention=convention) == pytest.approx(
            _fpr95_numpy(id_scores, ood_scores, convention)
        )
    assert auroc(id_scores, ood_scores) == pytest.approx(_auroc_numpy(id_scores, ood_scores))
    assert aupr_out(id_scores, ood_scores) == pytest.approx(_ap_numpy(-ood_scores, -id_scores))
    assert aupr_in(id_scores, ood_scores) == pytest.approx(_ap_numpy(id_scores, ood_scores))
    labels = np.r_[np.zeros(id_scores.size), np.ones(ood_scores.size)]
    stat = -np.r_[id_scores, ood_scores]
    assert auroc(id_scores, ood_scores) == pytest.approx(roc_auc_score(labels, stat))
    assert aupr_out(id_scores, ood_scores) == pytest.approx(average_precision_score(labels, stat))


def test_fpr_at_other_tpr():
    # Flagging >= 50% of OOD: t=0.1 flags 2/4 and no ID.
    assert fpr_at_tpr(ID, OOD, tpr=0.5) == 0.0
    assert fpr_at_tpr(ID, OOD, tpr=1.0) == 0.75
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr(ID, OOD, tpr=0.0)


@pytest.mark.parametrize(
    "id_scores, ood_scores, message",
    [
        ([], [0.1], "id_scores is empty"),
        ([0.1], [], "ood_scores is empty"),
        ([0.1, np.nan], [0.2], "non-finite"),
        ([0.1], [np.inf], "non-finite"),
        ([[0.1, 0.2]], [0.2], "1-D"),
    ],
)
def test_invalid_scores(id_scores, ood_scores, message):
    for metric in (fpr_at_tpr, auroc, aupr_out, aupr_in, ood_metrics):
        with pytest.raises(ValueError, match=message):
            metric(id_scores, ood_scores)


def test_invalid_convention():
    with pytest.raises(ValueError, match="convention"):
        ood_metrics(ID, OOD, convention="ood")
    with pytest.raises(ValueError, match="convention"):
        fpr_at_tpr(ID, OOD, convention="positive")


# FPR95 in two definitions. 20 OOD scores 0, 1, ..., 19 and 10 ID scores; the values are chosen
# so that the two definitions differ, in opposite directions under the two conventions.
FPR_OOD = np.arange(20.0)
FPR_ID = np.array([16.5, 18.02, 18.5, 19.5, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0])


def test_fpr95_definitions_hand_values():
    # ood-positive, "roc": flagging >= 95% of OOD (19 of 20) needs score <= 18 (the 19th
    # smallest OOD score); ID <= 18: only 16.5 -> 1/10.
    assert fpr_at_tpr(FPR_ID, FPR_OOD) == 0.1
    assert fpr_at_tpr(FPR_ID, FPR_OOD, fpr95="roc") == 0.1
    # "authors": thr = np.percentile(OOD, 95) at position 0.95 * 19 = 18.05 -> 18 + 0.05 * 1 =
    # 18.05; ID <= 18.05: 16.5 and 18.02 -> 2/10. With 20 OOD scores the authors' is larger.
    assert np.percentile(FPR_OOD, 95) == pytest.approx(18.05)
    assert fpr_at_tpr(FPR_ID, FPR_OOD, fpr95="authors") == 0.2
    # id-positive, "roc": accepting >= 95% of ID (all 10: 9/10 < 95%) needs score >= 16.5;
    # OOD >= 16.5: 17, 18, 19 -> 3/20.
    assert fpr_at_tpr(FPR_ID, FPR_OOD, convention="id-positive") == 0.15
    # "authors": thr = np.percentile(ID, 5) at position 0.05 * 9 = 0.45 -> 16.5 + 0.45 * 1.52 =
    # 17.184; OOD >= 17.184: 18, 19 -> 2/20. With 10 ID scores the authors' is smaller.
    assert np.percentile(FPR_ID, 5) == pytest.approx(17.184)
    assert fpr_at_tpr(FPR_ID, FPR_OOD, convention="id-positive", fpr95="authors") == 0.1
    # In percent, AUROC and AUPR untouched.
    roc = ood_metrics(FPR_ID, FPR_OOD)
    authors = ood_metrics(FPR_ID, FPR_OOD, fpr95="authors")
    assert roc["fpr95"] == pytest.approx(10.0) and authors["fpr95"] == pytest.approx(20.0)
    assert authors["auroc"] == roc["auroc"] and authors["aupr"] == roc["aupr"]
    assert ood_metrics(FPR_ID, FPR_OOD, "id-positive", fpr95="authors")["fpr95"] == (
        pytest.approx(10.0)
    )


def test_fpr95_authors_below_roc_with_10_ood_scores():
    # 10 OOD scores 0..9: "roc" needs all 10 flagged (9/10 < 95%), score <= 9; "authors"
    # thr = position 0.95 * 9 = 8.55 -> 8.55. ID 5 and 8.8 are <= 9, only 5 is <= 8.55.
    ood = np.arange(10.0)
    id_scores = np.array([5.0, 8.8, 9.5, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0])
    assert fpr_at_tpr(id_scores, ood) == 0.2
    assert fpr_at_tpr(id_scores, ood, fpr95="authors") == 0.1


@pytest.mark.parametrize("n_pos", [19, 20, 21, 37, 40, 100, 101, 150])
@pytest.mark.parametrize("convention", ["ood-positive", "id-positive"])
def test_fpr95_authors_vs_roc_order(n_pos, convention):
    # With n positive-class scores the authors' threshold sits between the ROC one and an
    # adjacent positive score: authors' >= roc when n % 20 == 0, equal when n % 20 == 1, else <=.
    rng = np.random.default_rng(n_pos)
    for _ in range(20):
        pos, neg = rng.normal(0.0, 1.0, size=n_pos), rng.normal(1.0, 1.0, size=53)
        id_scores, ood_scores = (neg, pos) if convention == "ood-positive" else (pos + 1, neg - 1)
        roc = fpr_at_tpr(id_scores, ood_scores, convention=convention)
        authors = fpr_at_tpr(id_scores, ood_scores, convention=convention, fpr95="authors")
        if n_pos % 20 == 0:
            assert authors >= roc
        elif n_pos % 20 == 1:
            assert authors == roc
        else:
            assert authors <= roc


@pytest.mark.parametrize("seed", range(5))
def test_fpr95_authors_is_the_authors_formula(seed):
    # The authors' code: thr = np.quantile(ood, 0.95) (linear); FPR = mean(id <= thr).
    rng = np.random.default_rng(seed)
    id_scores = rng.normal(1.0, 1.0, size=rng.integers(5, 300))
    ood_scores = rng.normal(0.0, 1.0, size=rng.integers(5, 300))
    expected = np.mean(id_scores <= np.percentile(ood_scores, 95))
    assert fpr_at_tpr(id_scores, ood_scores, fpr95="authors") == expected
    mirrored = np.mean(ood_scores >= np.percentile(id_scores, 5))
    assert fpr_at_tpr(id_scores, ood_scores, convention="id-positive", fpr95="authors") == (
        pytest.approx(mirrored)
    )


def test_fpr95_definition_everywhere_and_invalid():
    metrics = OODMetrics(fpr95="authors").update(
        np.r_[FPR_ID, FPR_OOD], np.r_[np.zeros(10), np.ones(20)]
    )
    assert metrics.fpr95 == "authors"
    assert metrics.compute()["fpr95"] == pytest.approx(20.0)
    both = OODMetrics(convention="id-positive", fpr95="authors")
    both.update(FPR_ID, np.zeros(10, dtype=bool)).update(FPR_OOD, np.ones(20, dtype=bool))
    assert both.compute()["fpr95"] == pytest.approx(10.0)
    assert OODMetrics().update(np.r_[FPR_ID, FPR_OOD], np.r_[np.zeros(10), np.ones(20)]).compute()[
        "fpr95"
    ] == pytest.approx(10.0)
    id_scores, sets = _protocol_inputs()
    result = evaluate_protocol(id_scores, sets, fpr95="authors")
    idx = protocol_indices(id_scores.size, {"svhn": 12}, 0.2, 5, 0)["svhn"][0]
    assert result["ood"]["svhn"]["fpr95"]["mean"] == pytest.approx(
        100 * fpr_at_tpr(id_scores, sets["svhn"][idx], fpr95="authors")
    )
    for call in (
        lambda: fpr_at_tpr(FPR_ID, FPR_OOD, fpr95="quantile"),
        lambda: ood_metrics(FPR_ID, FPR_OOD, fpr95="Authors"),
        lambda: OODMetrics(fpr95="interpolated"),
        lambda: evaluate_protocol(id_scores, sets, fpr95="percentile"),
    ):
        with pytest.raises(ValueError, match=r"fpr95 must be one of \('roc', 'authors'\)"):
            call()


def _protocol_inputs():
    rng = np.random.default_rng(123)
    id_scores = rng.normal(1.0, 1.0, size=103)
    sets = {
        "gaussian": rng.normal(-1.0, 1.0, size=500),
        "textures": rng.normal(0.5, 1.0, size=300),
        "uniform": rng.normal(-2.0, 1.0, size=400),
        "svhn": rng.normal(0.0, 1.0, size=12),  # smaller than the draw: used whole
    }
    return id_scores, sets


def test_protocol_indices():
    sizes = {"a": 1000, "b": 50, "c": 21}
    draws = protocol_indices(103, sizes, ratio=0.2, repeats=5, seed=7)
    assert set(draws) == set(sizes)
    for idx in draws["a"] + draws["b"]:
        assert idx.size == round(0.2 * 103) == 21
    for name in ("a", "b"):
        for idx in draws[name]:
            assert np.unique(idx).size == idx.size  # without replacement
            assert idx.min() >= 0 and idx.max() < sizes[name]
    assert all(np.array_equal(idx, np.arange(21)) for idx in draws["c"])
    assert not np.array_equal(draws["a"][0], draws["a"][1])
    again = protocol_indices(103, sizes, ratio=0.2, repeats=5, seed=7)
    assert all(np.array_equal(x, y) for n in sizes for x, y in zip(draws[n], again[n], strict=True))
    other = protocol_indices(103, sizes, ratio=0.2, repeats=5, seed=8)
    assert not np.array_equal(draws["a"][0], other["a"][0])
    # A set's draws do not depend on which other sets are evaluated.
    alone = protocol_indices(103, {"a": 1000}, ratio=0.2, repeats=5, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(draws["a"], alone["a"], strict=True))
    with pytest.raises(ValueError):
        protocol_indices(103, sizes, ratio=0.001)
    with pytest.raises(ValueError):
        protocol_indices(103, sizes, repeats=0)
    with pytest.raises(ValueError, match="empty"):
        protocol_indices(103, {"a": 0})


def test_evaluate_protocol_structure_and_averages():
    id_scores, sets = _protocol_inputs()
    result = evaluate_protocol(id_scores, sets, ratio=0.2, repeats=5, seed=3)
    assert result["convention"] == "ood-positive"
    assert set(result["ood"]) == set(sets)
    assert result == evaluate_protocol(id_scores, sets, ratio=0.2, repeats=5, seed=3)
    assert result != evaluate_protocol(id_scores, sets, ratio=0.2, repeats=5, seed=4)

    # Recompute independently from the same draws.
    draws = protocol_indices(id_scores.size, {n: s.size for n, s in sets.items()}, 0.2, 5, 3)
    runs = {name: [ood_metrics(id_scores, sets[name][idx]) for idx in draws[name]] for name in sets}
    for name, set_runs in runs.items():
        for key in ("fpr95", "auroc", "aupr"):
            values = np.array([run[key] for run in set_runs])
            assert result["ood"][name][key]["mean"] == pytest.approx(values.mean())
            assert result["ood"][name][key]["std"] == pytest.approx(values.std(ddof=1))
    for key in ("fpr95", "auroc", "aupr"):
        everything = np.array([run[key] for set_runs in runs.values() for run in set_runs])
        assert everything.size == 20
        assert result["average"][key]["mean"] == pytest.approx(everything.mean())
        assert result["average"][key]["std"] == pytest.approx(everything.std(ddof=1))
        clean = np.array([run[key] for n in ("textures", "svhn") for run in runs[n]])
        assert result["average_no_noise"][key]["mean"] == pytest.approx(clean.mean())
        assert result["average_no_noise"][key]["std"] == pytest.approx(clean.std(ddof=1))
    # The small set is used whole every time: zero spread.
    assert result["ood"]["svhn"]["auroc"]["std"] == 0.0
    assert result["ood"]["svhn"]["auroc"]["mean"] == pytest.approx(
        100 * _auroc_numpy(id_scores, sets["svhn"])
    )


def test_evaluate_protocol_id_positive_and_noise_only():
    id_scores, sets = _protocol_inputs()
    result = evaluate_protocol(id_scores, sets, convention="id-positive")
    assert result["convention"] == "id-positive"
    idx = protocol_indices(id_scores.size, {"svhn": 12}, 0.2, 5, 0)["svhn"][0]
    assert result["ood"]["svhn"]["fpr95"]["mean"] == pytest.approx(
        100 * fpr_at_tpr(id_scores, sets["svhn"][idx], convention="id-positive")
    )
    noise_only = evaluate_protocol(id_scores, {"gaussian": sets["gaussian"]})
    assert noise_only["average_no_noise"] is None
    assert noise_only["average"] == noise_only["ood"]["gaussian"]


def test_evaluate_protocol_errors():
    id_scores, sets = _protocol_inputs()
    with pytest.raises(ValueError, match="empty"):
        evaluate_protocol(id_scores, {})
    with pytest.raises(ValueError, match="id_scores is empty"):
        evaluate_protocol([], sets)
    with pytest.raises(ValueError, match="'svhn' is empty"):
        evaluate_protocol(id_scores, {**sets, "svhn": []})
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_protocol(id_scores, {**sets, "svhn": [np.nan]})
    with pytest.raises(ValueError, match="convention"):
        evaluate_protocol(id_scores, sets, convention="both")


def test_accuracy_and_summarize():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    targets = np.array([0, 1, 0, 0])
    assert accuracy(logits, targets) == 75.0
    assert accuracy(np.array([0, 1, 2, 2]), targets) == 50.0
    with pytest.raises(ValueError, match="shapes"):
        accuracy(logits, targets[:3])
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    # sample std (ddof=1), as usual over seeds; a single value has std 0
    assert summarize([1.0, 2.0, 3.0, 4.0]) == pytest.approx({"mean": 2.5, "std": np.sqrt(5 / 3)})
    assert summarize([7.0]) == {"mean": 7.0, "std": 0.0}
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_paired_difference_mean_and_t_interval():
    from bgresample import paired_difference

    d = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert d["mean"] == 2.0 and d["per_seed"] == [1.0, 2.0, 3.0]
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2) * std(ddof=1) / sqrt(n)
    np.testing.assert_allclose(d["ci95"], [2.0 - half, 2.0 + half])
    assert "ci95" not in paired_difference([1.0], [0.5])
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1.0, 2.0], [1.0])
