"""Results over seeds: mean and std of each variant's metrics (the paper's Tables 2 and 3),
per-seed values, paired differences between variants, subset composition, resampling
diagnostics and selection costs."""

from __future__ import annotations

from typing import Any

import numpy as np

from bgresample.metrics import METRIC_KEYS, paired_difference, summarize

METRICS = ("fpr95", "auroc", "aupr")
AVERAGES = (
    "average",
    "average_no_noise",
    "average_unshared",
    "average_near",
    "average_far",
)
#: Paired differences reported when both variants ran.
PAIRS = (("resampled", "random"), ("resampled", "full"), ("random", "full"))
#: Selection costs averaged over seeds (see :func:`bgresample.engine.experiment.selection_cost`).
COST_KEYS = (
    "setup",
    "per_epoch",
    "total",
    "id",
    "fwd_eq",
    "seconds",
    "distinct_items",
    "working_set",
)


def _mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample std over seeds (ddof=1; 0 with one seed)."""
    return summarize(values)


def _variant(per_seed: list[dict[str, Any]], v: str, sets: list[str]) -> dict[str, Any]:
    """One variant over seeds: mean and std of the per-seed means, and the per-seed values."""
    runs = [s["variants"][v] for s in per_seed]
    entry: dict[str, Any] = {
        "accuracy": float(np.mean([r["accuracy"] for r in runs])),
        "accuracy_std": summarize([r["accuracy"] for r in runs])["std"],
        "subset_size": float(np.mean([r["subset_size"] for r in runs])),
        "ood": {
            s: {m: _mean_std([r["ood"][s][m]["mean"] for r in runs]) for m in METRIC_KEYS}
            for s in sets
        },
    }
    for key in AVERAGES:
        if all(r.get(key) for r in runs):
            entry[key] = {m: _mean_std([r[key][m]["mean"] for r in runs]) for m in METRIC_KEYS}
    if all(r.get("validation") for r in runs):
        val = [r["validation"] for r in runs]
        entry["validation"] = {
            "accuracy": _mean_std([v["accuracy"] for v in val]),
            "average": {m: _mean_std([v["average"][m]["mean"] for v in val]) for m in METRICS},
        }
    entry["per_seed"] = [
        {
            "seed": s["seed"],
            "accuracy": r["accuracy"],
            "average": {m: r["average"][m]["mean"] for m in METRICS},
            "ood": {k: {m: r["ood"][k][m]["mean"] for m in METRICS} for k in sets},
        }
        for s, r in zip(per_seed, runs, strict=True)
    ]
    return entry


def _paired_differences(per_seed: list[dict[str, Any]], variants: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a, b in PAIRS:
        if a not in variants or b not in variants:
            continue
        out[f"{a}_minus_{b}"] = {
            key: {
                m: paired_difference(
                    [s["variants"][a][key][m]["mean"] for s in per_seed],
                    [s["variants"][b][key][m]["mean"] for s in per_seed],
                )
                for m in METRICS
            }
            for key in AVERAGES
            if key in variants[a] and key in variants[b]
        }
        if "validation" in variants[a] and "validation" in variants[b]:
            out[f"{a}_minus_{b}"]["validation"] = {
                m: paired_difference(
                    [s["variants"][a]["validation"]["average"][m]["mean"] for s in per_seed],
                    [s["variants"][b]["validation"]["average"][m]["mean"] for s in per_seed],
                )
                for m in METRICS
            }
    return out


def _composition(per_seed: list[dict[str, Any]]) -> dict[str, Any] | None:
    comps = [s["composition"] for s in per_seed if s.get("composition")]
    if not comps:
        return None
    return {
        v: {
            f: {
                "pool": comps[0][v][f]["pool"],
                "subset": float(np.mean([c[v][f]["subset"] for c in comps])),
            }
            for f in comps[0][v]
        }
        for v in comps[0]
    }


def _resample(per_seed: list[dict[str, Any]]) -> dict[str, Any] | None:
    res = [s["resample"] for s in per_seed if "resample" in s]
    if not res:
        return None
    return {
        "draws_per_item": res[0]["draws_per_item"],
        "never_drawn": float(np.mean([r["never_drawn"] for r in res])),
        "weight_draws_spearman": float(np.mean([r["weight_draws_spearman"] for r in res])),
        "weight_by_family": {
            f: float(np.mean([r["weight_by_family"][f] for r in res]))
            for f in res[0]["weight_by_family"]
        },
    }


def _selection(per_seed: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    return {
        v: {
            key: float(np.mean([s["variants"][v]["selection"][key] for s in per_seed]))
            for key in COST_KEYS
        }
        | {"refresh": per_seed[0]["variants"][v]["selection"]["refresh"]}
        for v in names
    }


def aggregate(
    per_seed: list[dict[str, Any]], convention: str, fpr95: str = "roc"
) -> dict[str, Any]:
    """Mean and std over seeds of the per-seed means (the paper's Tables 2 and 3), per-seed
    values, paired differences, subset composition, resampling diagnostics and the selection
    costs of every variant."""
    names = list(per_seed[0]["variants"])
    sets = list(per_seed[0]["variants"][names[0]]["ood"])
    variants = {v: _variant(per_seed, v, sets) for v in names}
    out: dict[str, Any] = {
        "variants": variants,
        "convention": convention,
        "fpr95": fpr95,
        "seeds": [s["seed"] for s in per_seed],
        "paired_differences": _paired_differences(per_seed, variants),
        "selection": _selection(per_seed, names),
    }
    for key, value in (("composition", _composition(per_seed)), ("resample", _resample(per_seed))):
        if value is not None:
            out[key] = value
    return out
