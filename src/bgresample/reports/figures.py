"""Figures of a finished run: the paper's Figure 1 for every OOD set, and the resampling views.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot, no global backend) at
a fixed size, so a PNG is always ``int(inches * DPI)`` pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from bgresample.files import atomic_write

if TYPE_CHECKING:
    from bgresample.config import Config
    from bgresample.results import Composition, RunResults

DPI = 100
SCORES_INCHES = (16.0, 10.0)
RESAMPLING_INCHES = (15.0, 10.5)
ID_COLOR = "#1f77b4"
OOD_COLOR = "#d62728"
VARIANT_COLORS = {"none": "#7f7f7f", "full": "#2ca02c", "random": "#ff7f0e", "resampled": "#9467bd"}
_MORE_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#000000")
FAMILY_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
BENCHMARK_TITLES = {
    "embedded": "embedded benchmark (ID: digits 0–7)",
    "mnist-bench": "MNIST benchmark (ID: MNIST digits 0–9)",
}
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9.5,
    "figure.titlesize": 15,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "bgresample",
}


def benchmark_name(results: RunResults, cfg: Config) -> str:
    """The benchmark a run used: ``results.json``'s, else the config's ID data spec."""
    return results.benchmark or cfg.data.id or "embedded"


def benchmark_title(name: str) -> str:
    """A readable name of the benchmark (with its ID data where known)."""
    return BENCHMARK_TITLES.get(name, f"ID: {name}")


def variant_color(variant: str, index: int) -> str:
    return VARIANT_COLORS.get(variant, _MORE_COLORS[index % len(_MORE_COLORS)])


def new_figure(inches: tuple[float, float], layout: str | None = "constrained") -> Figure:
    with mpl.rc_context(STYLE):
        return Figure(figsize=inches, dpi=DPI, layout=layout)


def save_figure(fig: Figure, stem: Path, svg: bool = True) -> Path:
    """Write ``stem.png`` (and ``stem.svg``) without timestamps, atomically (a failed write
    keeps the previous file and raises :class:`~bgresample.files.WriteError`); returns the
    PNG's path."""
    png = stem.with_suffix(".png")
    with mpl.rc_context(STYLE):
        atomic_write(
            png, lambda fh: fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})
        )
        if svg and fig.get_layout_engine() is not None:
            fig.set_layout_engine("none")  # keep the layout just computed; no second solve
            meta = {"Date": None, "Creator": None}
            atomic_write(
                stem.with_suffix(".svg"), lambda fh: fig.savefig(fh, format="svg", metadata=meta)
            )
    return png


def unavailable(ax: Axes, title: str, why: str) -> None:
    """Mark a panel whose data this run does not have."""
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def load_scores(run_dir: Path, seed: int, variants: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """``seed_<seed>/scores_<variant>.npz`` of each variant that has one."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for v in variants:
        path = run_dir / f"seed_{seed}" / f"scores_{v}.npz"
        if path.is_file():
            with np.load(path) as f:
                out[v] = {k: f[k] for k in f.files}
    return out


#: How the report names each OOD score (all: higher = more in-distribution): (short name, axis
#: label). Unknown (user-registered) scores are named as registered.
SCORE_NAMES = {
    "msp": ("MSP", "MSP (max softmax probability)"),
    "extra_class": ("ID-class probability", "max ID-class softmax probability"),
    "maxlogit": ("max logit", "max logit"),
    "energy": ("−energy", "−energy (logsumexp of the logits)"),
    "odin": ("ODIN score", "ODIN score (scaled MSP of a perturbed input)"),
    "mahalanobis": ("−Mahalanobis", "−Mahalanobis distance to the closest class mean"),
    "knn": ("−kNN distance", "−distance to the k-th nearest training feature"),
    "hopfield": ("Hopfield Δ", "Hopfield Δ (ID-memory minus outlier-memory energy)"),
}


def score_names(score: str) -> tuple[str, str]:
    """(short name, axis label) of the OOD score ``score``."""
    return SCORE_NAMES.get(score, (score, f"{score} score"))


def hist_bins(arrays: list[np.ndarray]) -> np.ndarray:
    """41 bin edges over the scores: from a multiple of 0.05 to 1 for scores in [0, 1]
    (probabilities), else from the smallest to the largest score."""
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    if lo >= 0.0 and hi <= 1.0:
        return np.linspace(np.floor(lo * 20) / 20, 1.0, 41)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, 41)


def ood_weight(n_scored: int, subsample: int | None) -> float:
    """Weight of each of ``n_scored`` OOD items that makes them weigh, together, what one
    protocol subsample of ``subsample`` items does (a set no larger is used whole); 1 for
    whole-set evaluation (``subsample`` None)."""
    return 1.0 if subsample is None else min(subsample, n_scored) / n_scored


def score_figure(
    scores: dict[str, dict[str, np.ndarray]],
    ood_set: str,
    title: str,
    stem: Path,
    score: str = "msp",
    legend: Mapping[str, Mapping[str, float]] | None = None,
    subsample: int | None = None,
) -> Path:
    """Figure 1 for one OOD set: histograms of the OOD score ``score`` (ID blue, OOD red) per
    variant on top, ROC and PR curves of all variants (OOD positive) below.

    The curves pool every scored item; the PR curve weights the OOD items by
    :func:`ood_weight` so that its OOD share is that of one protocol subsample of
    ``subsample`` items (None: whole sets), the share the tables' AUPR is measured at.
    ``legend`` gives each variant's FPR95 / AUROC / AUPR in the tables' protocol (one seed's
    values); a variant without one is labelled by name."""
    short, axis_label = score_names(score)
    variants = [v for v in scores if ood_set in scores[v]]
    fig = new_figure(SCORES_INCHES)
    with mpl.rc_context(STYLE):
        fig.suptitle(title, fontweight="bold")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.35])
        bins = hist_bins([scores[v][k] for v in variants for k in ("id", ood_set)])
        axes = top.subplots(1, len(variants), sharey=True, squeeze=False)[0]
        for i, (ax, v) in enumerate(zip(axes, variants, strict=True)):
            for key, color in (("id", ID_COLOR), (ood_set, OOD_COLOR)):
                s = scores[v][key]
                ax.hist(
                    s,
                    bins=bins,
                    weights=np.full(len(s), 1.0 / len(s)),
                    histtype="stepfilled",
                    facecolor=mpl.colors.to_rgba(color, 0.4),
                    edgecolor=color,
                    linewidth=1.2,
                )
            ax.set_title(f"{v}", color=variant_color(v, i), fontweight="bold")
            ax.set_xlabel(axis_label)
            if i == 0:
                ax.set_ylabel("share of items per bin")
        n_id, n_ood = len(scores[variants[0]]["id"]), len(scores[variants[0]][ood_set])
        top.suptitle(
            f"{short} histograms: ID test (blue, n={n_id}) vs {ood_set} (red, n={n_ood}); "
            "less overlap = better detection"
        )

        ax_roc, ax_pr = bottom.subplots(1, 2)
        prevalence = 0.0
        for i, v in enumerate(variants):
            id_s, ood_s = scores[v]["id"], scores[v][ood_set]
            labels = np.concatenate([np.zeros(len(id_s)), np.ones(len(ood_s))])
            stat = -np.concatenate([id_s, ood_s])
            m = (legend or {}).get(v)
            label = v + (
                f": FPR95 {m['fpr95']:.1f} | AUROC {m['auroc']:.1f} | AUPR {m['aupr']:.1f}"
                if m
                else ""
            )
            color = variant_color(v, i)
            fpr, tpr, _ = roc_curve(labels, stat)
            ax_roc.plot(fpr, tpr, color=color, linewidth=2, label=label)
            w_ood = ood_weight(len(ood_s), subsample)
            weights = np.concatenate([np.ones(len(id_s)), np.full(len(ood_s), w_ood)])
            precision, recall, _ = precision_recall_curve(labels, stat, sample_weight=weights)
            ax_pr.plot(recall, precision, color=color, linewidth=2)
            prevalence = w_ood * len(ood_s) / (len(id_s) + w_ood * len(ood_s))
        ax_roc.plot([0, 1], [0, 1], color="#999", linestyle=":", label="chance")
        ax_roc.axhline(0.95, color="#555", linestyle="--", linewidth=1, label="TPR 95% (FPR95)")
        ax_roc.set_xlabel("false positive rate (ID test flagged as OOD)")
        ax_roc.set_ylabel("true positive rate (OOD detected)")
        ax_roc.set_title("ROC, OOD = positive (up and left is better)")
        ax_pr.axhline(prevalence, color="#999", linestyle=":")
        ax_pr.set_xlabel("recall (OOD detected)")
        ax_pr.set_ylabel("precision (flagged items that are OOD)")
        ax_pr.set_title("Precision-recall, OOD = positive (up and right is better)")
        for ax in (ax_roc, ax_pr):
            ax.set_xlim(-0.01, 1.01)
            ax.set_ylim(-0.01, 1.01)
        bottom.legend(
            *ax_roc.get_legend_handles_labels(),
            loc="outside lower center",
            ncol=3,
            fontsize=10.5,
            title="variant: this seed's metrics in %, as in the tables (chance: dotted; in PR, "
            "the OOD share of one protocol subsample)",
        )
    return save_figure(fig, stem)


def _weights_panel(ax: Axes, w: np.ndarray, family: list[str] | None, seed: int) -> None:
    bins = np.geomspace(float(w.min()) * 0.95, float(w.max()) * 1.05, 50)
    if family is not None:
        fams = sorted(set(family))
        fam = np.asarray(family)
        for i, f in enumerate(fams):  # one outline per family, overlaid (not stacked)
            ax.hist(
                w[fam == f],
                bins=bins,
                histtype="step",
                linewidth=1.8,
                color=FAMILY_COLORS[i % len(FAMILY_COLORS)],
                label=f"{f} ({(fam == f).sum():,})",
            )
    else:
        ax.hist(w, bins=bins, color=FAMILY_COLORS[0])
    ax.axvline(float(w.mean()), color="k", linestyle="--", label=f"mean weight {w.mean():.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learned weight w (log scale)")
    ax.set_ylabel("pool items (log scale)")
    ax.set_title(f"Learned background weights (seed {seed})")
    ax.legend(title="family" if family is not None else None)


def _trajectory_panel(ax: Axes, hist: dict[str, Any], family: list[str] | None) -> None:
    steps = np.asarray(hist["step"])
    ax.fill_between(
        steps, hist["w_min"], hist["w_max"], color="#ddd", label="pool min – max", zorder=0
    )
    ax.plot(steps, hist["w_median"], color="k", linestyle="--", label="pool median")
    traced = np.asarray(hist.get("traced_weights", []))
    items = hist.get("traced_items", [])
    for rank, j in _extremes(traced[-1]) if len(items) else []:
        item = items[j]
        name = f"item {item}" if rank == "item" else f"{rank}: item {item}"
        name += f" ({family[item]})" if family is not None else ""
        ax.plot(steps, traced[:, j], linewidth=1.5, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("resampling step")
    ax.set_ylabel("weight w (log scale)")
    ax.set_title(f"Weights over the steps: top, median, bottom of {len(items)} traced items")
    ax.legend(ncol=2, fontsize=8)


def _extremes(final: np.ndarray, k: int = 3) -> list[tuple[str, int]]:
    """(label, column) of the ``k`` largest, the 2 median and the ``k`` smallest final weights."""
    order = np.argsort(final, kind="stable")
    n = len(order)
    if n <= 2 * k + 2:
        return [("item", int(j)) for j in order[::-1]]
    mid = order[n // 2 - 1 : n // 2 + 1]
    return (
        [("top", int(j)) for j in order[::-1][:k]]
        + [("median", int(j)) for j in mid[::-1]]
        + [("bottom", int(j)) for j in order[:k][::-1]]
    )


def _ess_panel(ax: Axes, hist: dict[str, Any], pool_size: int) -> None:
    ess = 100.0 * np.asarray(hist["ess"]) / pool_size
    ax.plot(hist["step"], ess, color="#9467bd", linewidth=2)
    ax.set_ylim(0, 105)
    ax.set_xlabel("resampling step")
    ax.set_ylabel("ESS (% of the pool)")
    ax.set_title("Effective sample size of the sampling distribution (100% = uniform)")


def _composition_panel(ax: Axes, comp: Composition) -> None:
    variants = list(comp)
    fams = sorted(comp[variants[0]])
    series = [("pool", [comp[variants[0]][f].pool for f in fams], "#bbbbbb")]
    series += [
        (f"{v} subset", [comp[v][f].subset for f in fams], variant_color(v, i))
        for i, v in enumerate(variants)
    ]
    width = 0.8 / len(series)
    x = np.arange(len(fams))
    for k, (label, vals, color) in enumerate(series):
        bars = ax.bar(
            x + (k - (len(series) - 1) / 2) * width,
            100 * np.asarray(vals),
            width,
            color=color,
            label=label,
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(x, fams)
    ax.set_ylabel("share of items (%)")
    ax.set_title("Subset composition by family (mean over seeds)")
    ax.legend()


def resampling_figure(
    history: dict[str, Any] | None,
    weights: np.ndarray | None,
    family: list[str] | None,
    composition: Composition | None,
    pool_size: int,
    seed: int,
    title: str,
    stem: Path,
) -> Path:
    """Weight histogram, traced weight trajectories, ESS over steps and subset composition;
    a panel whose data is missing says so."""
    fig = new_figure(RESAMPLING_INCHES)
    with mpl.rc_context(STYLE):
        fig.suptitle(title, fontweight="bold")
        (a, b), (c, d) = fig.subplots(2, 2)
        if weights is not None:
            _weights_panel(a, weights, family, seed)
        else:
            unavailable(a, "Learned background weights", "no weights.safetensors in this run")
        if history is not None:
            _trajectory_panel(b, history, family)
            _ess_panel(c, history, pool_size)
        else:
            unavailable(b, "Weight trajectories", "no resample_history.json in this run")
            unavailable(c, "Effective sample size", "no resample_history.json in this run")
        if composition:
            _composition_panel(d, composition)
        else:
            unavailable(d, "Subset composition", "no provenance (families) in this run")
    return save_figure(fig, stem)
