"""Typed results: what ``results.json`` and the per-seed files hold (schema: docs/results.md).

The engine builds these objects and writes their :meth:`to_json`; the reports and ``compare``
read files back with :meth:`from_json`. ``to_json`` writes the keys in the order the engine has
always written them, so ``X.from_json(d).to_json() == d`` for every file bgresample writes, key
order included. ``from_json`` takes values as stored (no conversion) and leaves keys that older
files lack (schema 2, or no ``schema`` before bgresample 0.2.0) as None.

Keys that are data (variant, OOD set, metric, family, group names) stay dict keys: a metric set
is ``{metric: MetricSummary}``, with ``fpr95``, ``auroc``, ``aupr`` and, since 0.2.0,
``aupr_in`` and ``aupr_out``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Self, TypeVar

_T = TypeVar("_T")

#: Version of the ``results.json`` layout.
SCHEMA = "bgresample.results/2"
#: The averages of the evaluation protocol itself; ``average_<group>`` keys follow them.
PROTOCOL_AVERAGES = ("average", "average_no_noise")


def _json(value: Any) -> Any:
    """The JSON form of a results value: records by their ``to_json``, containers by item."""
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _present(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The attributes ``names`` of ``obj`` that are not None, as JSON, in that order."""
    return {n: _json(v) for n in names if (v := getattr(obj, n)) is not None}


class _Record:
    """A JSON object whose keys are the dataclass's fields in declaration order; None fields
    are left out. The default :meth:`from_json` suits records of plain values."""

    def to_json(self) -> dict[str, Any]:
        return _present(self, tuple(f.name for f in fields(self)))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        """The record of ``d``; a field with a default may be absent."""
        kwargs = {
            f.name: d[f.name] if f.default is MISSING else d.get(f.name, f.default)
            for f in fields(cls)
        }
        return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class MetricSummary(_Record):
    """Mean and sample std (over seeds, or over the protocol's OOD subsamples)."""

    mean: float
    std: float


#: ``{metric: MetricSummary}``, e.g. ``{"fpr95": ..., "auroc": ..., "aupr": ...}``.
MetricSet = dict[str, MetricSummary]


def _optional(read: Callable[[Any], _T], value: Any) -> _T | None:
    """``read(value)``, or None for a value that is None (absent or null)."""
    return None if value is None else read(value)


def _dict_of(read: Callable[[Any], _T]) -> Callable[[Mapping[str, Any]], dict[str, _T]]:
    """A reader of ``{name: value}`` that reads each value with ``read``."""
    return lambda d: {k: read(v) for k, v in d.items()}


#: A metric set from ``{metric: {"mean", "std"}}``.
_metrics = _dict_of(MetricSummary.from_json)


def _averages(d: Mapping[str, Any]) -> dict[str, MetricSet | None]:
    """The ``average`` and ``average_*`` entries of ``d``, in its order (nulls kept)."""
    return {k: _optional(_metrics, v) for k, v in d.items() if k.split("_")[0] == "average"}


@dataclass(kw_only=True)
class SeedValues(_Record):
    """One seed's means in ``variants.<name>.per_seed``: ``average`` and ``ood`` hold
    ``{metric: value}`` for fpr95, auroc and aupr."""

    seed: int
    accuracy: float
    average: dict[str, float]
    ood: dict[str, dict[str, float]]


@dataclass(kw_only=True)
class Validation(_Record):
    """Over seeds: accuracy and average OOD metrics on the validation split, and each validation
    OOD set's metrics (``ood``; None in files written before it was recorded)."""

    accuracy: MetricSummary
    average: MetricSet
    ood: dict[str, MetricSet] | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            accuracy=MetricSummary.from_json(d["accuracy"]),
            average=_metrics(d["average"]),
            ood=_optional(_dict_of(_metrics), d.get("ood")),
        )


@dataclass(kw_only=True)
class SeedValidation(_Record):
    """One seed's accuracy, average OOD metrics (mean over the validation OOD sets) and each
    validation OOD set's metrics (``ood``; None in files written before it was recorded) on the
    validation split."""

    accuracy: float
    average: MetricSet
    ood: dict[str, MetricSet] | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            accuracy=d["accuracy"],
            average=_metrics(d["average"]),
            ood=_optional(_dict_of(_metrics), d.get("ood")),
        )


@dataclass(kw_only=True)
class ScoreResults(_Record):
    """One OOD score's metrics in a multi-score ``evaluate``: per set and the averages."""

    ood: dict[str, MetricSet]
    averages: dict[str, MetricSet | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ood": _json(self.ood), **_json(self.averages)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(ood=_dict_of(_metrics)(d["ood"]), averages=_averages(d))


@dataclass(kw_only=True)
class ShiftedResults(_Record):
    """``variants.<name>.shifted.<set>``: a covariate-shifted ID set (labelled digits of another
    source; a detector should accept them, so they are not averaged with the OOD sets), in %:
    the classifier's ``accuracy`` on it and the share of it ``flagged`` as OOD at the FPR95
    threshold of the evaluation (:func:`bgresample.metrics.fpr95_threshold`: with OOD
    positive, the threshold that flags 95% of the pooled scores of every OOD test item scored;
    with ID positive, the one that accepts 95% of the ID test set). Over seeds the means, with
    their std over seeds in ``accuracy_std`` / ``flagged_std``; ``items``: the set's size."""

    accuracy: float
    accuracy_std: float | None = None
    flagged: float
    flagged_std: float | None = None
    items: int


@dataclass(kw_only=True)
class VariantResults(_Record):
    """``variants.<name>`` of ``results.json``: a variant over seeds (``run``,
    ``compare-selectors``) or one evaluated model (``evaluate``, and each seed's evaluation).

    ``averages`` maps ``average``, ``average_no_noise`` and ``average_<group>`` to their metric
    sets, in file order (None where the file holds null: no OOD set of that kind)."""

    accuracy: float
    accuracy_std: float | None = None
    #: The OOD score of a single model's evaluation (the first of ``scores``).
    score: str | None = None
    #: Background items fine-tuned on (mean over seeds; for ``evaluate``, the checkpoint's, where
    #: :func:`bgresample.engine.evaluate.background_items` finds a record of them).
    subset_size: float | None = None
    ood: dict[str, MetricSet]
    averages: dict[str, MetricSet | None] = field(default_factory=dict)
    #: The convention of a single model's evaluation (over seeds: the run's ``convention``).
    convention: str | None = None
    validation: Validation | None = None
    per_seed: list[SeedValues] | None = None
    #: Every score of a multi-score ``evaluate``.
    scores: dict[str, ScoreResults] | None = None
    #: The covariate-shifted ID sets (the MNIST benchmark's; absent otherwise, and in older files).
    shifted: dict[str, ShiftedResults] | None = None

    @property
    def average(self) -> MetricSet:
        """The average over all OOD sets (empty where the results have none)."""
        return self.averages.get("average") or {}

    def to_json(self) -> dict[str, Any]:
        own = {k: v for k, v in self.averages.items() if k in PROTOCOL_AVERAGES}
        groups = {k: v for k, v in self.averages.items() if k not in PROTOCOL_AVERAGES}
        return {
            **_present(self, ("accuracy", "accuracy_std", "score", "subset_size", "ood")),
            **_json(own),
            **_present(self, ("convention",)),
            **_json(groups),
            **_present(self, ("validation", "per_seed", "scores", "shifted")),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            accuracy=d["accuracy"],
            accuracy_std=d.get("accuracy_std"),
            score=d.get("score"),
            subset_size=d.get("subset_size"),
            ood=_dict_of(_metrics)(d["ood"]),
            averages=_averages(d),
            convention=d.get("convention"),
            validation=_optional(Validation.from_json, d.get("validation")),
            per_seed=_optional(lambda ps: [SeedValues.from_json(p) for p in ps], d.get("per_seed")),
            scores=_optional(_dict_of(ScoreResults.from_json), d.get("scores")),
            shifted=_optional(_dict_of(ShiftedResults.from_json), d.get("shifted")),
        )


@dataclass(kw_only=True)
class SeedSelection(_Record):
    """One seed's selection budget and costs of a variant (see
    :func:`bgresample.engine.experiment.selection_cost`)."""

    refresh: str
    budget: int
    background_epoch_steps: int
    working_set: int
    setup: int
    per_epoch: float
    total: int
    id: int
    fwd_eq: float | None = None
    seconds: float | None = None
    distinct_items: int


@dataclass(kw_only=True)
class SelectionCost(_Record):
    """``selection.<name>``: a variant's selection costs, means over seeds (``fwd_eq`` and
    ``seconds`` since bgresample 0.2.0)."""

    setup: float
    per_epoch: float
    total: float
    id: float
    fwd_eq: float | None = None
    seconds: float | None = None
    distinct_items: float
    working_set: float
    refresh: str


@dataclass(kw_only=True)
class Budget(_Record):
    """``budget``: what every variant of a run shared."""

    gamma: float
    k: int
    background_epoch_steps: int
    finetune_epochs: int
    background_draws: int
    loss: str
    alpha: float
    score: str


@dataclass(kw_only=True)
class FamilyShare(_Record):
    """A family's share of the pool and of a subset (per seed also the item counts)."""

    pool: float
    subset: float
    pool_count: int | None = None
    subset_count: int | None = None


#: ``{variant: {family: FamilyShare}}``.
Composition = dict[str, dict[str, FamilyShare]]


_composition = _dict_of(_dict_of(FamilyShare.from_json))


@dataclass(kw_only=True)
class ResampleSummary(_Record):
    """``resample``: Algorithm 1's diagnostics (per seed also the final effective sample
    size)."""

    draws_per_item: float
    never_drawn: float
    ess_final: float | None = None
    weight_draws_spearman: float
    weight_by_family: dict[str, float]


@dataclass(kw_only=True)
class PairedDifference(_Record):
    """Mean of per-seed differences a - b, the differences and (2 seeds or more) a 95% t
    interval (:func:`bgresample.metrics.paired_difference`)."""

    mean: float
    per_seed: list[float]
    ci95: list[float] | None = None


#: ``{"<a>_minus_<b>": {average key or "validation": {metric: PairedDifference}}}``.
PairedDifferences = dict[str, dict[str, dict[str, PairedDifference]]]


@dataclass(kw_only=True)
class EvalProtocol(_Record):
    """``protocol`` of an ``evaluate`` folder (a ``run`` stores the protocol's name only)."""

    name: str
    ratio: float
    repeats: int


@dataclass(kw_only=True)
class RunResults(_Record):
    """A run folder's ``results.json`` (``run``, ``compare-selectors`` or ``evaluate``).

    Built by the engine with ``schema`` = :data:`SCHEMA`; read back, ``schema`` is the file's
    (None before bgresample 0.2.0)."""

    schema: str | None = SCHEMA
    variants: dict[str, VariantResults]
    convention: str | None = None
    fpr95: str | None = None
    #: The evaluated checkpoint (``evaluate``).
    checkpoint: str | None = None
    seeds: list[int] | None = None
    paired_differences: PairedDifferences | None = None
    selection: dict[str, SelectionCost] | None = None
    composition: Composition | None = None
    resample: ResampleSummary | None = None
    budget: Budget | None = None
    timing_s: dict[str, float] | None = None
    benchmark: str | None = None
    pool_size: int | None = None
    ood_sets: list[str] | None = None
    #: ``paper`` or ``full`` (``run``); name, ratio and repeats (``evaluate``).
    protocol: str | EvalProtocol | None = None
    groups: dict[str, list[str]] | None = None
    #: True for a ``--quick`` smoke test.
    quick: bool | None = None
    #: The OOD scores of an ``evaluate``, in order.
    scores: list[str] | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        protocol = d.get("protocol")
        paired = _dict_of(_dict_of(_dict_of(PairedDifference.from_json)))
        return cls(
            schema=d.get("schema"),
            variants=_dict_of(VariantResults.from_json)(d["variants"]),
            convention=d.get("convention"),
            fpr95=d.get("fpr95"),
            checkpoint=d.get("checkpoint"),
            seeds=d.get("seeds"),
            paired_differences=_optional(paired, d.get("paired_differences")),
            selection=_optional(_dict_of(SelectionCost.from_json), d.get("selection")),
            composition=_optional(_composition, d.get("composition")),
            resample=_optional(ResampleSummary.from_json, d.get("resample")),
            budget=_optional(Budget.from_json, d.get("budget")),
            timing_s=d.get("timing_s"),
            benchmark=d.get("benchmark"),
            pool_size=d.get("pool_size"),
            ood_sets=d.get("ood_sets"),
            protocol=EvalProtocol.from_json(protocol) if isinstance(protocol, dict) else protocol,
            groups=d.get("groups"),
            quick=d.get("quick"),
            scores=d.get("scores"),
        )


#: The keys of a per-seed variant after those of its evaluation.
_SEED_KEYS = ("validation", "selection", "subset_size", "finetune", "composition")


@dataclass(kw_only=True)
class SeedVariant(_Record):
    """``seed_<s>/<variant>.json``: one seed's evaluation of a fine-tuned variant, its
    validation metrics, selection costs, fine-tuning summary and (for a subset of a pool with
    families) composition."""

    evaluation: VariantResults
    validation: SeedValidation | None = None
    selection: SeedSelection | None = None
    subset_size: int | None = None
    #: What :func:`bgresample.engine.finetune.finetune` reports (steps, final losses, ...).
    finetune: dict[str, Any] | None = None
    composition: dict[str, FamilyShare] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.evaluation.to_json(), **_present(self, _SEED_KEYS)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            evaluation=VariantResults.from_json(
                {k: v for k, v in d.items() if k not in _SEED_KEYS}
            ),
            validation=_optional(SeedValidation.from_json, d.get("validation")),
            selection=_optional(SeedSelection.from_json, d.get("selection")),
            subset_size=d.get("subset_size"),
            finetune=d.get("finetune"),
            composition=_optional(_dict_of(FamilyShare.from_json), d.get("composition")),
        )


@dataclass(kw_only=True)
class SeedResults(_Record):
    """``seed_<s>/results.json``: every variant of one seed, with Algorithm 1's diagnostics
    when a variant learned weights and the subsets' composition where the pool has families."""

    seed: int
    resample: ResampleSummary | None = None
    variants: dict[str, SeedVariant]
    composition: Composition | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            seed=d["seed"],
            resample=_optional(ResampleSummary.from_json, d.get("resample")),
            variants=_dict_of(SeedVariant.from_json)(d["variants"]),
            composition=_optional(_composition, d.get("composition")),
        )
