"""Results over seeds: mean and std of each variant's metrics (the paper's Tables 2 and 3),
per-seed values, paired differences between variants, subset composition, resampling
diagnostics and selection costs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bgresample.metrics import METRIC_KEYS, paired_difference, summarize
from bgresample.results import (
    Composition,
    FamilyShare,
    MetricSet,
    MetricSummary,
    PairedDifference,
    PairedDifferences,
    ResampleSummary,
    RunResults,
    SeedResults,
    SeedValidation,
    SeedValues,
    SeedVariant,
    SelectionCost,
    ShiftedResults,
    Validation,
    VariantResults,
)
from bgresample.selectors.registry import CELL_SEP, variant_parts

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


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _mean_std(values: list[float]) -> MetricSummary:
    """Mean and sample std over seeds (ddof=1; 0 with one seed)."""
    return MetricSummary.from_json(summarize(values))


def _over_seeds(sets: list[MetricSet], metrics: tuple[str, ...]) -> MetricSet:
    """Mean and std over seeds of each metric's per-seed mean."""
    return {m: _mean_std([s[m].mean for s in sets]) for m in metrics}


def _variant(per_seed: list[SeedResults], v: str, sets: list[str]) -> VariantResults:
    """One variant over seeds: mean and std of the per-seed means, and the per-seed values."""
    runs = [s.variants[v] for s in per_seed]
    evals = [r.evaluation for r in runs]
    accuracies = [e.accuracy for e in evals]
    averages: dict[str, MetricSet | None] = {
        key: _over_seeds([e.averages[key] for e in evals], METRIC_KEYS)
        for key in AVERAGES
        if all(e.averages.get(key) for e in evals)
    }
    val = [r.validation for r in runs]
    validation = (
        Validation(
            accuracy=_mean_std([x.accuracy for x in val]),
            average=_over_seeds([x.average for x in val], METRICS),
            ood=_validation_sets(val),
        )
        if all(val)
        else None
    )
    return VariantResults(
        # a cell SELECTOR+LOSS is scored with its loss's score, not the run's (budget.score)
        score=evals[0].score if variant_parts(v)[1] is not None else None,
        accuracy=_mean(accuracies),
        accuracy_std=_mean_std(accuracies).std,
        subset_size=_mean([r.subset_size for r in runs]),
        ood={s: _over_seeds([e.ood[s] for e in evals], METRIC_KEYS) for s in sets},
        averages=averages,
        validation=validation,
        shifted=_shifted(evals),
        per_seed=[
            SeedValues(
                seed=s.seed,
                accuracy=e.accuracy,
                average={m: e.average[m].mean for m in METRICS},
                ood={k: {m: e.ood[k][m].mean for m in METRICS} for k in sets},
            )
            for s, e in zip(per_seed, evals, strict=True)
        ],
    )


def _validation_sets(val: list[SeedValidation | None]) -> dict[str, MetricSet] | None:
    """Each validation OOD set's metrics over seeds; None unless every seed recorded the same
    sets (files written before they were recorded have none)."""
    sets = [x.ood if x is not None else None for x in val]
    first = sets[0]
    if not first or any(s is None or list(s) != list(first) for s in sets):
        return None
    return {n: _over_seeds([s[n] for s in sets if s is not None], METRICS) for n in first}


def _shifted(evals: list[VariantResults]) -> dict[str, ShiftedResults] | None:
    """Each shifted ID set's accuracy and share flagged as OOD: mean and std over seeds."""
    if not all(e.shifted for e in evals):
        return None
    out = {}
    for name, first in evals[0].shifted.items():  # type: ignore[union-attr]
        rows = [e.shifted[name] for e in evals]  # type: ignore[index]
        acc, flagged = _mean_std([r.accuracy for r in rows]), _mean_std([r.flagged for r in rows])
        out[name] = ShiftedResults(
            accuracy=acc.mean,
            accuracy_std=acc.std,
            flagged=flagged.mean,
            flagged_std=flagged.std,
            items=first.items,
        )
    return out


def _paired(
    per_seed: list[SeedResults], a: str, b: str, metrics_of: Callable[[SeedVariant], MetricSet]
) -> dict[str, PairedDifference]:
    """Per metric, the paired difference over seeds of variant ``a`` minus ``b``."""
    return {
        m: PairedDifference.from_json(
            paired_difference(
                [metrics_of(s.variants[a])[m].mean for s in per_seed],
                [metrics_of(s.variants[b])[m].mean for s in per_seed],
            )
        )
        for m in METRICS
    }


def _average(key: str) -> Callable[[SeedVariant], MetricSet]:
    """The average ``key`` (e.g. ``average_no_noise``) of a seed's variant."""
    return lambda r: r.evaluation.averages[key]


def _validation(r: SeedVariant) -> MetricSet:
    """The average on the validation split of a seed's variant."""
    assert r.validation is not None
    return r.validation.average


def cell_pairs(names: list[str]) -> list[tuple[str, str]]:
    """The pairs of the cells ``SELECTOR+LOSS`` among ``names``: each cell minus the same loss's
    ``random`` cell, and ``resampled`` minus ``full`` per loss."""
    pairs = []
    for name in names:
        selector, loss = variant_parts(name)
        if loss is None:
            continue
        random_cell, full_cell = f"random{CELL_SEP}{loss}", f"full{CELL_SEP}{loss}"
        if selector != "random":
            pairs.append((name, random_cell))
        if selector == "resampled":
            pairs.append((name, full_cell))
    return pairs


def _paired_differences(
    per_seed: list[SeedResults], variants: dict[str, VariantResults]
) -> PairedDifferences:
    out: PairedDifferences = {}
    for a, b in (*PAIRS, *cell_pairs(list(variants))):
        if a not in variants or b not in variants:
            continue
        va, vb = variants[a], variants[b]
        diff = {
            key: _paired(per_seed, a, b, _average(key))
            for key in AVERAGES
            if key in va.averages and key in vb.averages
        }
        if va.validation is not None and vb.validation is not None:
            diff["validation"] = _paired(per_seed, a, b, _validation)
        out[f"{a}_minus_{b}"] = diff
    return out


def _composition(per_seed: list[SeedResults]) -> Composition | None:
    comps = [s.composition for s in per_seed if s.composition]
    if not comps:
        return None
    return {
        v: {
            f: FamilyShare(
                pool=comps[0][v][f].pool,
                subset=_mean([c[v][f].subset for c in comps]),
            )
            for f in comps[0][v]
        }
        for v in comps[0]
    }


def _resample(per_seed: list[SeedResults]) -> ResampleSummary | None:
    res = [s.resample for s in per_seed if s.resample is not None]
    if not res:
        return None
    return ResampleSummary(
        draws_per_item=res[0].draws_per_item,
        never_drawn=_mean([r.never_drawn for r in res]),
        weight_draws_spearman=_mean([r.weight_draws_spearman for r in res]),
        weight_by_family={
            f: _mean([r.weight_by_family[f] for r in res]) for f in res[0].weight_by_family
        },
    )


def _selection(per_seed: list[SeedResults], names: list[str]) -> dict[str, SelectionCost]:
    out = {}
    for v in names:
        costs = [s.variants[v].selection for s in per_seed]
        out[v] = SelectionCost(
            setup=_mean([c.setup for c in costs]),
            per_epoch=_mean([c.per_epoch for c in costs]),
            total=_mean([c.total for c in costs]),
            id=_mean([c.id for c in costs]),
            fwd_eq=_mean([c.fwd_eq for c in costs]),
            seconds=_mean([c.seconds for c in costs]),
            distinct_items=_mean([c.distinct_items for c in costs]),
            working_set=_mean([c.working_set for c in costs]),
            refresh=costs[0].refresh,
        )
    return out


def aggregate(per_seed: list[SeedResults], convention: str, fpr95: str = "roc") -> RunResults:
    """Mean and std over seeds of the per-seed means (the paper's Tables 2 and 3), per-seed
    values, paired differences, subset composition, resampling diagnostics and the selection
    costs of every variant."""
    names = list(per_seed[0].variants)
    sets = list(per_seed[0].variants[names[0]].evaluation.ood)
    variants = {v: _variant(per_seed, v, sets) for v in names}
    return RunResults(
        variants=variants,
        convention=convention,
        fpr95=fpr95,
        seeds=[s.seed for s in per_seed],
        paired_differences=_paired_differences(per_seed, variants),
        selection=_selection(per_seed, names),
        composition=_composition(per_seed),
        resample=_resample(per_seed),
    )
