"""OOD-detection metrics and the paper's evaluation protocol (docs/method.md, "Evaluation
protocol").

Scores are ID-ness scores (higher = more in-distribution, e.g. MSP). Two conventions:

- ``"ood-positive"`` (the paper's): OOD is the positive class and the detector statistic is
  ``-score``. FPR95 is the fraction of ID examples flagged as OOD at the threshold that flags at
  least 95% of the OOD examples; AUPR is AUPR-Out.
- ``"id-positive"``: ID is the positive class and the statistic is ``score``. FPR95 is the
  fraction of OOD examples accepted as ID at the threshold that accepts at least 95% of the ID
  examples; AUPR is AUPR-In.

FPR95 has two definitions (``fpr95=``): ``"roc"`` (the default) takes the first ROC operating point
whose TPR >= 95%, so the threshold is an actual score; ``"authors"`` is the paper authors' code:
the threshold is the linearly interpolated 95% quantile of the positive class's statistic
(``np.quantile``), e.g. for ood-positive ``mean(id_scores <= np.quantile(ood_scores, 0.95))``.
The authors' threshold lies between the ROC one and an adjacent positive-class score, so FPR95
differs by at most the share of negatives scored in between, in either direction: with n
positive-class scores, the authors' value is >= the ROC one when n is a multiple of 20 (e.g. the
protocol's 2,000 OOD draws for a 10,000-image ID test set), equal when n % 20 == 1, else <=.

AUPR is the average precision of the class taken as positive, AP = sum_n (R_n - R_{n-1}) P_n
over the distinct thresholds (sklearn's ``average_precision_score``, no interpolation):
AUPR-Out with OOD positive (statistic ``-score``), AUPR-In with ID positive (``score``).

Single metrics are fractions in [0, 1]; ``ood_metrics`` and ``evaluate_protocol`` report percent.
:class:`OODMetrics` also takes pytorch-ood's inputs (outlier scores, labels < 0 for OOD) and
returns its key names and fractions on request (``OODMetrics.pytorch_ood()``); sklearn and scipy
are imported when a metric is first computed, not with ``bgresample``.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Convention = Literal["ood-positive", "id-positive"]
CONVENTIONS: tuple[str, ...] = ("ood-positive", "id-positive")
FPR95Definition = Literal["roc", "authors"]
FPR95_DEFINITIONS: tuple[str, ...] = ("roc", "authors")
METRIC_KEYS: tuple[str, ...] = ("fpr95", "auroc", "aupr", "aupr_in", "aupr_out")
NOISE_SETS: frozenset[str] = frozenset({"gaussian", "uniform"})
ScoreDirection = Literal["id", "outlier"]
LabelKind = Literal["is_ood", "negative"]
KeyStyle = Literal["bgresample", "pytorch-ood"]
#: pytorch-ood's ``OODMetrics.compute()`` keys for bgresample's (fractions there).
PYTORCH_OOD_KEYS: dict[str, str] = {
    "auroc": "AUROC",
    "aupr_in": "AUPR-IN",
    "aupr_out": "AUPR-OUT",
    "fpr95": "FPR95TPR",
}


def _as_scores(scores: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one score")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite scores (NaN or inf)")
    return arr


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _check_fpr95(fpr95: str) -> None:
    if fpr95 not in FPR95_DEFINITIONS:
        raise ValueError(
            f"fpr95 must be one of {FPR95_DEFINITIONS} ('roc': first ROC point with TPR >= the "
            f"level; 'authors': interpolated quantile threshold), got {fpr95!r}"
        )


def _binary_problem(
    id_scores: ArrayLike, ood_scores: ArrayLike, convention: str
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = positive class) and detector statistic (higher = more positive)."""
    _check_convention(convention)
    id_arr = _as_scores(id_scores, "id_scores")
    ood_arr = _as_scores(ood_scores, "ood_scores")
    scores = np.concatenate([id_arr, ood_arr])
    is_ood = np.concatenate([np.zeros(id_arr.size), np.ones(ood_arr.size)])
    if convention == "ood-positive":
        return is_ood, -scores
    return 1.0 - is_ood, scores


def fpr_at_tpr(
    id_scores: ArrayLike,
    ood_scores: ArrayLike,
    tpr: float = 0.95,
    convention: Convention = "ood-positive",
    fpr95: FPR95Definition = "roc",
) -> float:
    """FPR at true-positive rate ``tpr`` (FPR95 for the default), in one of two definitions.

    ``fpr95="roc"`` (default): the FPR of the first ROC operating point whose TPR >= ``tpr``.
    Thresholds are the distinct statistic values, so tied scores are never split.

    ``fpr95="authors"`` (the paper authors' code): the threshold is the linearly interpolated
    quantile of the positive class's scores, so it may fall between two scores. ood-positive:
    ``mean(id_scores <= np.quantile(ood_scores, tpr))``; id-positive:
    ``mean(ood_scores >= np.quantile(id_scores, 1 - tpr))``. See the module docstring for how far
    and in which direction the two differ.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    _check_fpr95(fpr95)
    if fpr95 == "authors":
        threshold = fpr95_threshold(id_scores, ood_scores, tpr, convention, fpr95)
        if convention == "ood-positive":
            return float(np.mean(_as_scores(id_scores, "id_scores") <= threshold))
        return float(np.mean(_as_scores(ood_scores, "ood_scores") >= threshold))
    from sklearn.metrics import roc_curve

    labels, stat = _binary_problem(id_scores, ood_scores, convention)
    fprs, tprs, _ = roc_curve(labels, stat, drop_intermediate=False)
    return float(fprs[np.argmax(tprs >= tpr)])


def fpr95_threshold(
    id_scores: ArrayLike,
    ood_scores: ArrayLike,
    tpr: float = 0.95,
    convention: Convention = "ood-positive",
    fpr95: FPR95Definition = "roc",
) -> float:
    """The score threshold at which :func:`fpr_at_tpr` reads its FPR, for flagging other images
    with :func:`flagged_as_ood` (e.g. covariate-shifted ID sets).

    ood-positive: an image is flagged as OOD when its score is <= the threshold, which is set by
    ``ood_scores`` so that at least ``tpr`` of them are flagged: the ``k``-th smallest OOD score
    with ``k`` the fewest OOD images that make up ``tpr`` of them (``fpr95="roc"``, the first ROC
    point), or ``np.quantile(ood_scores, tpr)`` (``"authors"``). id-positive: an image is
    accepted as ID when its score is >= the threshold, set by ``id_scores`` so that at least
    ``tpr`` of them are accepted (the ``k``-th largest ID score, or ``np.quantile(id_scores,
    1 - tpr)``). Then ``flagged_as_ood(id_scores, t) == fpr_at_tpr(...)`` with OOD positive, and
    ``1 - flagged_as_ood(ood_scores, t) == fpr_at_tpr(...)`` with ID positive.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    _check_convention(convention)
    _check_fpr95(fpr95)
    id_arr = _as_scores(id_scores, "id_scores")
    ood_arr = _as_scores(ood_scores, "ood_scores")
    if fpr95 == "authors":
        if convention == "ood-positive":
            return float(np.quantile(ood_arr, tpr))
        return float(np.quantile(id_arr, 1.0 - tpr))
    positives = np.sort(ood_arr) if convention == "ood-positive" else -np.sort(-id_arr)
    n = positives.size
    k = int(np.argmax(np.arange(1, n + 1) / n >= tpr))  # as roc_curve's tps / tps[-1]
    return float(positives[k])


def flagged_as_ood(
    scores: ArrayLike, threshold: float, convention: Convention = "ood-positive"
) -> float:
    """The share of ``scores`` flagged as OOD at a :func:`fpr95_threshold` of the same
    ``convention``: score <= threshold (ood-positive), score < threshold (id-positive)."""
    _check_convention(convention)
    arr = _as_scores(scores, "scores")
    flagged = arr <= threshold if convention == "ood-positive" else arr < threshold
    return float(np.mean(flagged))


def auroc(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve; ties count 1/2. Identical under both conventions."""
    from sklearn.metrics import roc_auc_score

    labels, stat = _binary_problem(id_scores, ood_scores, "ood-positive")
    return float(roc_auc_score(labels, stat))


def aupr_out(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with OOD as the positive class (statistic ``-score``)."""
    from sklearn.metrics import average_precision_score

    labels, stat = _binary_problem(id_scores, ood_scores, "ood-positive")
    return float(average_precision_score(labels, stat))


def aupr_in(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with ID as the positive class (statistic ``score``)."""
    from sklearn.metrics import average_precision_score

    labels, stat = _binary_problem(id_scores, ood_scores, "id-positive")
    return float(average_precision_score(labels, stat))


def ood_metrics(
    id_scores: ArrayLike,
    ood_scores: ArrayLike,
    convention: Convention = "ood-positive",
    fpr95: FPR95Definition = "roc",
) -> dict[str, float]:
    """FPR95, AUROC and AUPR (AUPR-Out for ood-positive, AUPR-In for id-positive), and both
    AUPRs under their own names (``aupr_in``, ``aupr_out``, as OpenOOD reports them), in percent.

    ``fpr95`` picks the FPR95 definition: ``"roc"`` or ``"authors"`` (see :func:`fpr_at_tpr`).
    """
    _check_convention(convention)
    _check_fpr95(fpr95)
    aupr = aupr_out if convention == "ood-positive" else aupr_in
    return {
        "fpr95": 100.0 * fpr_at_tpr(id_scores, ood_scores, 0.95, convention, fpr95),
        "auroc": 100.0 * auroc(id_scores, ood_scores),
        "aupr": 100.0 * aupr(id_scores, ood_scores),
        "aupr_in": 100.0 * aupr_in(id_scores, ood_scores),
        "aupr_out": 100.0 * aupr_out(id_scores, ood_scores),
    }


def summarize(values: Sequence[float] | np.ndarray, ddof: int = 1) -> dict[str, float]:
    """Mean and standard deviation of a non-empty sequence: the sample std (``ddof=1``; 0 for
    a single value) or the population std (``ddof=0``, numpy's default: the authors' code)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cannot summarize an empty sequence of values")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=ddof)) if arr.size > 1 else 0.0}


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> dict[str, float | list[float]]:
    """Mean of the paired differences ``a - b`` (one pair per seed), the differences
    (``per_seed``) and, with two or more pairs, a 95% t confidence interval (``ci95``)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two equal-length, non-empty sequences (got {len(x)} and {len(y)})")
    d = x - y
    out: dict[str, float | list[float]] = {"mean": float(d.mean()), "per_seed": d.tolist()}
    if d.size > 1:
        half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


def protocol_indices(
    n_id: int,
    set_sizes: Mapping[str, int],
    ratio: float = 0.2,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, list[np.ndarray]]:
    """OOD subsample indices of the protocol: per set, ``repeats`` draws of round(ratio * n_id).

    Draws are without replacement; a set with at most that many items is used whole in every
    repeat. Each set has its own Generator seeded by ``(seed, crc32(name))``, so its draws do
    not depend on which other sets are evaluated. ``seed`` must be >= 0.
    """
    if n_id < 1:
        raise ValueError(f"n_id must be >= 1, got {n_id}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    n_draw = round(ratio * n_id)
    if n_draw < 1:
        raise ValueError(f"ratio * n_id must round to >= 1, got ratio={ratio}, n_id={n_id}")
    draws: dict[str, list[np.ndarray]] = {}
    for name, size in set_sizes.items():
        if size < 1:
            raise ValueError(f"OOD set {name!r} is empty")
        if size <= n_draw:
            draws[name] = [np.arange(size) for _ in range(repeats)]
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        draws[name] = [rng.choice(size, size=n_draw, replace=False) for _ in range(repeats)]
    return draws


def _aggregate(runs: Sequence[Mapping[str, float]], ddof: int) -> dict[str, dict[str, float]]:
    return {key: summarize([run[key] for run in runs], ddof) for key in METRIC_KEYS}


def evaluate_protocol(
    id_scores: ArrayLike,
    ood_scores_by_set: Mapping[str, ArrayLike],
    ratio: float = 0.2,
    repeats: int = 5,
    seed: int = 0,
    convention: Convention = "ood-positive",
    draws: Mapping[str, Sequence[np.ndarray]] | None = None,
    fpr95: FPR95Definition = "roc",
    ddof: int = 1,
) -> dict:
    """The paper's protocol: per OOD set, metrics on ``repeats`` subsamples (see protocol_indices).

    ``draws`` (optional) gives the subsample indices into each set's scores; by default they are
    ``protocol_indices(...)``. Callers that score only the drawn items pass remapped draws.
    ``fpr95`` picks the FPR95 definition, ``"roc"`` or ``"authors"`` (see :func:`fpr_at_tpr`);
    ``ddof`` the std over the repeats (1: sample std; 0: numpy's default, the authors' code).

    Returns ``{"ood": {set: {metric: {"mean", "std"}}}, "average": ..., "average_no_noise": ...,
    "convention": convention}``, in percent. "average" is over all repeats of all sets;
    "average_no_noise" likewise but without the "gaussian" and "uniform" sets (any case; None if no
    other set is given).
    """
    _check_convention(convention)
    _check_fpr95(fpr95)
    if not ood_scores_by_set:
        raise ValueError("ood_scores_by_set is empty: need at least one OOD set")
    id_arr = _as_scores(id_scores, "id_scores")
    ood_arrs = {
        name: _as_scores(scores, f"OOD scores of set {name!r}")
        for name, scores in ood_scores_by_set.items()
    }
    if draws is None:
        draws = protocol_indices(
            id_arr.size, {name: arr.size for name, arr in ood_arrs.items()}, ratio, repeats, seed
        )
    runs = {
        name: [ood_metrics(id_arr, ood_arrs[name][idx], convention, fpr95) for idx in draws[name]]
        for name in ood_arrs
    }
    clean = [
        run for name, set_runs in runs.items() if name.lower() not in NOISE_SETS for run in set_runs
    ]
    return {
        "ood": {name: _aggregate(set_runs, ddof) for name, set_runs in runs.items()},
        "average": _aggregate([run for set_runs in runs.values() for run in set_runs], ddof),
        "average_no_noise": _aggregate(clean, ddof) if clean else None,
        "convention": convention,
    }


def accuracy(logits_or_preds: ArrayLike, targets: ArrayLike) -> float:
    """Top-1 accuracy in percent, from logits ``(N, K)`` (argmax) or predicted labels ``(N,)``."""
    outputs = np.asarray(logits_or_preds)
    labels = np.asarray(targets)
    preds = outputs.argmax(axis=-1) if outputs.ndim == 2 else outputs
    if preds.ndim != 1 or preds.shape != labels.shape:
        raise ValueError(
            f"need logits (N, K) or predictions (N,) with targets (N,), got shapes "
            f"{outputs.shape} and {labels.shape}"
        )
    if labels.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return 100.0 * float(np.mean(preds == labels))


class OODMetrics:
    """Accumulates scores over batches, then computes FPR95, AUROC and AUPR (in percent).

    By default scores are ID-ness scores (higher = more in-distribution, as every score of
    :mod:`bgresample.scores`) and ``is_ood`` marks the OOD inputs. ``compute()`` returns ``fpr95``
    and ``aupr`` in ``convention`` (default the paper's: OOD positive, FPR95 = share of ID
    inputs flagged at the threshold that flags 95% of the OOD ones, AUPR = AUPR-Out), plus
    ``auroc``, ``aupr_in`` and ``aupr_out`` under their own names. ``fpr95`` picks the FPR95
    definition: ``"roc"`` (default, first ROC point with TPR >= 95%) or ``"authors"`` (the paper
    authors' interpolated-quantile threshold; see :func:`fpr_at_tpr`)::

        metrics = OODMetrics()
        for x, is_ood in loader:
            metrics.update(msp(model(x)), is_ood)
        metrics.compute()  # {"fpr95": ..., "auroc": ..., "aupr": ..., "aupr_in": ..., ...}

    Keyword options (defaults: the above):

    - ``scores="outlier"``: the scores are outlier scores (higher = more OOD, as pytorch-ood's
      detectors give); they are negated.
    - ``labels="negative"``: ``update``'s second argument holds class labels, OOD where < 0
      (pytorch-ood's convention), instead of OOD flags.
    - ``fpr_at``: more TPR levels in (0, 1], each reported as ``fpr{100 level}`` (``fpr90``,
      ``fpr99.5``), in ``convention`` and by the ``fpr95`` definition.
    - ``percent=False``: fractions in [0, 1].
    - ``keys="pytorch-ood"``: pytorch-ood's key names (``AUROC``, ``AUPR-IN``, ``AUPR-OUT``,
      ``FPR95TPR``, levels as ``FPR90TPR``); needs ``convention="ood-positive"``.

    :meth:`pytorch_ood` sets all four to pytorch-ood's conventions. ``compute`` warns when AUROC
    is below 50%, the sign of scores fed in the other convention.

    Under DDP each rank holds its own share: gather the scores before ``compute`` if the
    metrics must cover every rank's inputs.
    """

    def __init__(
        self,
        convention: Convention = "ood-positive",
        fpr95: FPR95Definition = "roc",
        *,
        scores: ScoreDirection = "id",
        labels: LabelKind = "is_ood",
        fpr_at: Sequence[float] = (),
        percent: bool = True,
        keys: KeyStyle = "bgresample",
    ) -> None:
        _check_convention(convention)
        _check_fpr95(fpr95)
        if scores not in ("id", "outlier"):
            raise ValueError(
                f"scores must be 'id' (higher = more in-distribution, bgresample's scores) or "
                f"'outlier' (higher = more OOD, pytorch-ood's), got {scores!r}"
            )
        if labels not in ("is_ood", "negative"):
            raise ValueError(
                f"labels must be 'is_ood' (OOD flags, bool or 0/1) or 'negative' (class labels, "
                f"OOD where < 0: pytorch-ood's), got {labels!r}"
            )
        if keys not in ("bgresample", "pytorch-ood"):
            raise ValueError(f"keys must be 'bgresample' or 'pytorch-ood', got {keys!r}")
        if keys == "pytorch-ood" and convention != "ood-positive":
            raise ValueError(
                "keys='pytorch-ood' names pytorch-ood's FPR95TPR, which is OOD positive: use "
                f"convention='ood-positive', got {convention!r}"
            )
        if not isinstance(percent, bool):
            raise TypeError(f"percent must be True or False, got {percent!r}")
        levels = (fpr_at,) if isinstance(fpr_at, int | float) else tuple(fpr_at)
        for level in levels:
            ok = isinstance(level, int | float) and not isinstance(level, bool)
            if not ok or not 0.0 < level <= 1.0:
                raise ValueError(
                    f"fpr_at must hold TPR levels in (0, 1] (e.g. 0.9 for FPR at 90% TPR), "
                    f"got {level!r}"
                )
        self.convention = convention
        self.fpr95 = fpr95
        self.scores, self.labels, self.keys = scores, labels, keys
        self.fpr_at = tuple(float(level) for level in levels)
        self.percent = percent
        self.reset()

    @classmethod
    def pytorch_ood(cls, fpr_at: Sequence[float] = ()) -> OODMetrics:
        """Metrics in pytorch-ood's conventions, in and out: ``update(outlier_scores, labels)``
        with labels < 0 for OOD; ``compute()`` gives fractions under ``AUROC``, ``AUPR-IN``,
        ``AUPR-OUT``, ``FPR95TPR`` (AUPR by average precision: see the module docstring)."""
        return cls(
            scores="outlier", labels="negative", fpr_at=fpr_at, percent=False, keys="pytorch-ood"
        )

    def reset(self) -> OODMetrics:
        """Forget every score seen so far."""
        self._scores: list[np.ndarray] = []
        self._is_ood: list[np.ndarray] = []
        return self

    def update(self, scores: ArrayLike, is_ood: ArrayLike) -> OODMetrics:
        """Add a batch of ``scores`` (1-d) with their ``is_ood`` flags (1-d, bool or 0/1), or,
        with ``labels="negative"``, their class labels (OOD where < 0)."""
        s = _to_numpy(scores).astype(np.float64).reshape(-1)
        o = _to_numpy(is_ood).reshape(-1)
        what = "is_ood flags" if self.labels == "is_ood" else "labels"
        if s.shape != o.shape:
            raise ValueError(f"got {s.size} scores but {o.size} {what}")
        if self.labels == "negative":
            if o.dtype == bool or not np.issubdtype(o.dtype, np.number) or np.isnan(o).any():
                raise ValueError(
                    "with labels='negative', is_ood must hold numeric class labels (OOD where "
                    "< 0); for OOD flags use labels='is_ood'"
                )
            o = o < 0
        elif o.dtype != bool and not np.isin(o, (0, 1)).all():
            raise ValueError(
                "is_ood must hold booleans or 0/1; for class labels with OOD < 0 (pytorch-ood's "
                "convention) pass labels='negative' to OODMetrics"
            )
        self._scores.append(-s if self.scores == "outlier" else s)
        self._is_ood.append(o.astype(bool))
        return self

    def compute(self) -> dict[str, float]:
        """The metrics over every score added since the last ``reset``: ``fpr95``, ``auroc``,
        ``aupr`` (in ``convention``), ``aupr_in``, ``aupr_out`` and one ``fpr{level}`` per
        ``fpr_at`` level, in percent (or as set up: see the class docstring)."""
        if not self._scores:
            raise ValueError("no scores: call update(scores, is_ood) first")
        s, o = np.concatenate(self._scores), np.concatenate(self._is_ood)
        id_s, ood_s = s[~o], s[o]
        if id_s.size == 0 or ood_s.size == 0:
            marks = "labels < 0" if self.labels == "negative" else "is_ood flags"
            raise ValueError(
                f"need both ID and OOD scores, got {id_s.size} ID and {ood_s.size} OOD (OOD "
                f"inputs are marked by {marks})"
            )
        a_in, a_out = aupr_in(id_s, ood_s), aupr_out(id_s, ood_s)
        values = {
            "fpr95": fpr_at_tpr(id_s, ood_s, 0.95, self.convention, self.fpr95),
            "auroc": auroc(id_s, ood_s),
            "aupr": a_out if self.convention == "ood-positive" else a_in,
            "aupr_in": a_in,
            "aupr_out": a_out,
        }
        for level in self.fpr_at:
            key = f"fpr{round(100.0 * level, 6):g}"
            values[key] = fpr_at_tpr(id_s, ood_s, level, self.convention, self.fpr95)
        if values["auroc"] < 0.5:
            hint = (
                "higher as more ID; for outlier scores (higher = more OOD, e.g. pytorch-ood's) "
                "pass scores='outlier'"
                if self.scores == "id"
                else "higher as more OOD; for ID-ness scores (bgresample's) pass scores='id'"
            )
            warnings.warn(
                f"AUROC is {100.0 * values['auroc']:.2f}%, below chance: the scores rank OOD "
                f"inputs as more in-distribution than ID ones. OODMetrics(scores="
                f"{self.scores!r}) reads {hint}",
                UserWarning,
                stacklevel=2,
            )
        scale = 100.0 if self.percent else 1.0
        if self.keys == "pytorch-ood":
            return {
                PYTORCH_OOD_KEYS.get(key, f"FPR{key[3:]}TPR"): scale * value
                for key, value in values.items()
                if key != "aupr"
            }
        return {key: scale * value for key, value in values.items()}


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
