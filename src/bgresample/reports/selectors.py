"""The report section of ``bgresample compare-selectors``: selector tables and the Pareto plot of
detection against selection cost. :func:`bgresample.reports.build.build_report` adds it to the
report of a run folder whose ``results.json`` has a selection ``budget``."""

from __future__ import annotations

from pathlib import Path

from bgresample.reports import tables
from bgresample.reports.document import Block, Heading, Image, Text
from bgresample.reports.figures import new_figure, save_figure, variant_color
from bgresample.results import RunResults, SelectionCost
from bgresample.selectors import CELL_SEP, NONE, variant_parts

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _count(x: float) -> str:
    return f"{x:,.0f}"


def _seconds(cost: SelectionCost) -> str:
    return f"{cost.seconds:.1f}" if cost.seconds is not None else "n/a"


def _fwd_eq(cost: SelectionCost) -> float:
    """The cost in forward-pass equivalents; the forward passes for files that predate it."""
    return cost.fwd_eq if cost.fwd_eq is not None else cost.total


def summary_table(results: RunResults) -> tables.Table:
    """Selector -> average FPR95 / AUROC / AUPR, ID accuracy and selection cost."""
    spread = tables.spread_over(results) is not None
    rows = []
    for v, r in results.variants.items():
        c = results.selection[v]
        rows.append(
            [v, c.refresh]
            + [tables.pm_text(r.average[m], spread) for m in tables.METRICS]
            + [tables.accuracy_text(r)]
            + [_count(x) for x in (c.working_set, c.distinct_items, c.setup, c.per_epoch)]
            + [_count(c.total), _count(_fwd_eq(c)), _seconds(c)]
        )
    header = ["selector", "refresh"] + [f"avg {tables.METRIC_LABELS[m]}" for m in tables.METRICS]
    header += ["ID acc.", "working set", "distinct used", "fwd setup", "fwd / epoch", "fwd total"]
    header += ["fwd-eq total", "seconds"]
    return tables.Table(header, rows)


def cost_table(results: RunResults) -> tables.Table:
    """Selector -> average FPR95 (mean ± std over seeds) and what choosing cost: the report's
    view of :func:`summary_table`, whose other metrics are Table 2's Average rows."""
    spread = tables.spread_over(results) is not None
    rows = []
    for v, r in results.variants.items():
        c = results.selection[v]
        rows.append(
            [v, c.refresh, tables.pm_text(r.average["fpr95"], spread)]
            + [_count(x) for x in (c.working_set, c.distinct_items, c.setup, c.per_epoch)]
            + [_count(c.total), _count(_fwd_eq(c)), _seconds(c)]
        )
    header = ["selector", "refresh", "avg FPR95 ↓", "working set", "distinct used", "fwd setup"]
    header += ["fwd / epoch", "fwd total", "fwd-eq total", "seconds"]
    return tables.Table(header, rows)


#: Markers of the losses in a figure of loss x background cells.
LOSS_MARKERS = {"uniform": "o", "energy": "s", "hopfield": "^", "extra_class": "v"}


def pareto_front(costs: list[float], fprs: list[float]) -> list[int]:
    """Indices of the points no other point beats on both cost and FPR95, by rising cost."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], fprs[i]))
    front: list[int] = []
    for i in order:
        if not front or fprs[i] < fprs[front[-1]]:
            front.append(i)
    return front


def pareto_figure(results: RunResults, stem: Path) -> Path:
    """Average FPR95 (mean ± std over seeds) against total selection cost in forward-pass
    equivalents over the pool size (a backward counted as two forwards), one point per selector
    with background data labelled with its measured selection time, the Pareto front as a
    dashed line; ``none`` is quoted in the title. Returns the PNG's path."""
    variants = results.variants
    names = [v for v in variants if v != NONE]
    n_pool = max(1, int(results.pool_size))
    costs = [_fwd_eq(results.selection[v]) / n_pool for v in names]
    fpr95 = [variants[v].average["fpr95"] for v in names]
    fprs, stds = [m.mean for m in fpr95], [m.std for m in fpr95]
    # with loss x background cells: colour by selector, marker by loss, a wider figure
    cells = any(variant_parts(v)[1] is not None for v in names)
    fig = new_figure((10.5, 5.5) if cells else (8.0, 5.5))
    ax = fig.add_subplot()
    selectors = list(dict.fromkeys(variant_parts(v)[0] for v in variants))
    for i, v in enumerate(names):
        selector, loss = variant_parts(v)
        loss = loss or (results.budget.loss if results.budget is not None else "")
        ax.errorbar(
            costs[i],
            fprs[i],
            yerr=stds[i],
            fmt=LOSS_MARKERS.get(loss, "D") if cells else MARKERS[i % len(MARKERS)],
            color=(
                variant_color(selector, selectors.index(selector))
                if cells
                else variant_color(v, list(variants).index(v))
            ),
            capsize=3,
            markersize=8,
            label=f"{v} ({_seconds(results.selection[v])} s)",
        )
    front = pareto_front(costs, fprs)
    ax.plot([costs[i] for i in front], [fprs[i] for i in front], "--", color="#555", lw=1)
    ax.set_xlabel(
        "selection cost: forward-pass equivalents / pool size (backward = 2 forwards; "
        "legend: wall seconds)"
    )
    ax.set_ylabel("average FPR95 (%) ↓")
    title = f"Selectors at γ = {results.budget.gamma}: detection vs selection cost"
    if NONE in variants:
        none_fpr = variants[NONE].average["fpr95"].mean
        title += f"\n(none, no background data: {none_fpr:.2f})"
    ax.set_title(title)
    if cells:  # many points: the legend beside the axes, not over them
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.legend(loc="best")
    return save_figure(fig, stem, svg=False)


def report_section(results: RunResults, pareto: Path) -> list[Block]:
    """The selector section of the report (for results with a ``budget``); ``pareto`` is the
    plot's path in the run folder."""
    b = results.budget
    notes = (
        f"Every selector fine-tunes the same pre-trained model for {b.finetune_epochs} epochs "
        f"on the same ID batches with {b.background_draws:,} background draws, loss "
        f"`{b.loss}` (alpha {b.alpha}), score `{b.score}`. Budget: at most "
        f"k = round(γN) = {b.k:,} distinct pool items are eligible per background epoch "
        f"({b.background_epoch_steps} steps, one pass over k items): `random`, `resampled` "
        "and `topk-weight` fix one subset (`resampled`'s rule keeps about k), `ntom` and `poem` "
        "choose k items anew every background epoch, `dos` picks each batch from a random "
        "k-subset drawn anew every background epoch; `full` (every item) and `none` (no "
        "background) are the references. **working set**: items eligible at a time; "
        "**distinct used**: items trained on over the run. Cost: forward passes over pool "
        "items spent on choosing (mean over seeds): **setup** before fine-tuning (Algorithm 1, "
        "whose passes also back-propagate), **per epoch** during it, **total** both; "
        "**fwd-eq total**: all of it in forward-pass equivalents, a backward counted as two "
        "forwards (Algorithm 1: 3 per ID item and 3 per pool item), ID passes included; "
        "**seconds**: measured wall time of choosing (Algorithm 1, and the selector's own "
        "scoring during fine-tuning)."
    )
    for name, why in (("poem", "its posterior"), ("hopfield", "its stored ID patterns")):
        cost = (results.selection or {}).get(name)
        n_id = cost.id if cost else None
        if n_id:
            notes += (
                f" `{name}` also passes {n_id:,.0f} ID images for {why} (counted in fwd-eq "
                "total only)."
            )
    cells = {v: r.score for v, r in results.variants.items() if variant_parts(v)[1] is not None}
    if cells:
        notes += (
            f" A cell SELECTOR{CELL_SEP}LOSS fine-tunes with the loss LOSS instead (its options: "
            "config.yaml's `selectors` section of that loss) and is scored with its score: "
            + ", ".join(f"`{v}` {score or b.score}" for v, score in cells.items())
            + "; the paired differences compare each cell with the same loss's `random` cell."
        )
    return [
        Heading("Background selectors on the same budget"),
        Text(notes),
        cost_table(results),
        Text(
            "**avg FPR95**: mean ± std over seeds of the average over the OOD sets. Each "
            "selector's FPR95, AUROC and AUPR per OOD set: Table 2 above (one column per "
            "selector) and [tables/table2.csv](tables/table2.csv)."
        ),
        Image(
            pareto.as_posix(),
            "Average FPR95 against selection cost",
            "One point per selector (mean ± std over seeds); the dashed line joins the selectors "
            "that no other beats on both cost and FPR95. Cost 1 = one forward pass per pool "
            "item.",
        ),
    ]
