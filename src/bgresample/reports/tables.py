"""The paper's Table 2 (OOD detection per set) and Table 3 (ID accuracy) from ``results.json``.

Display tables (:class:`Table`) render to Markdown, HTML and console text; the CSV files hold
the same numbers unrounded (one value per column) and the LaTeX files the paper's layout.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Any

from bgresample.results import (
    MetricSet,
    MetricSummary,
    PairedDifference,
    RunResults,
    VariantResults,
)

METRICS = ("fpr95", "auroc", "aupr")
METRIC_LABELS = {"fpr95": "FPR95 ↓", "auroc": "AUROC ↑", "aupr": "AUPR ↑"}
CONVENTION_NOTE = {
    "ood-positive": "OOD is the positive class (the paper's convention); AUPR is AUPR-Out.",
    "id-positive": "ID is the positive class; FPR95 is the share of OOD accepted at 95% ID TPR.",
}


@dataclass
class Table:
    """A display table: a header row and string cells. A cell ``**x**`` is shown in bold.
    ``groups`` (label, number of columns) adds a row above the header that spans the columns
    of each group (HTML; markdown and text keep the one header row)."""

    header: list[str]
    rows: list[list[str]]
    groups: list[tuple[str, int]] | None = None

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return "\n".join(
            [line(self.header), "|" + "---|" * len(self.header), *map(line, self.rows)]
        )

    def html(self) -> str:
        top = ""
        header = self.header
        if self.groups:
            spans = "".join(
                f'<th colspan="{n}">{html.escape(label)}</th>' for label, n in self.groups
            )
            top = f"<tr>{spans}</tr>"
            header = [h.rsplit(": ", 1)[-1] for h in header]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        return (
            f'<div class="wide"><table><thead>{top}<tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )

    def text(self) -> str:
        """Aligned plain text for the console."""
        rows = [[c.replace("**", "") for c in r] for r in [self.header, *self.rows]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        return "\n".join(fmt.format(*r).rstrip() for r in rows)


def _html_cell(cell: str) -> str:
    if len(cell) > 4 and cell.startswith("**") and cell.endswith("**"):
        return f"<strong>{html.escape(cell[2:-2])}</strong>"
    return html.escape(cell)


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    """CSV with ``\\n`` line ends; floats keep full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def pm_text(m: MetricSummary, spread: bool = True) -> str:
    """``mean ± std``, or the mean alone where there is no spread to show (one seed)."""
    return f"{m.mean:.2f} ± {m.std:.2f}" if spread else f"{m.mean:.2f}"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


#: Printed, and put at the top of the report, for a ``--quick`` run.
def quick_banner(seeds: int, pool: int = 4000, pretrain: int = 8, finetune: int = 4) -> str:
    """The warning above a --quick run's tables, with its real number of seeds (and pool size
    and epochs: :func:`quick_banner_for` reads them from the config)."""
    return (
        f"SMOKE TEST (--quick): a tiny configuration ({pool:,} pool images, {pretrain} "
        f"pre-training and {finetune} fine-tuning {_plural(finetune, 'epoch')}, "
        f"{seeds} {_plural(seeds, 'seed')})"
        " that checks the pipeline end to end; its numbers say nothing about the method. Run "
        "without --quick for results."
    )


def quick_banner_for(cfg: Any, results: RunResults) -> str:
    """:func:`quick_banner` with the run's seeds and pool size and the config's epochs."""
    seeds = len(results.seeds or []) or cfg.run.seeds
    pool = results.pool_size
    if pool is None:  # a results file from before pool sizes were recorded: the config's
        d = cfg.data
        mnist = d.id is None and d.benchmark == "mnist"
        pool = d.mnist.pool_size if mnist else d.embedded.pool_size
    return quick_banner(seeds, pool, cfg.pretrain.epochs, cfg.finetune.epochs)


#: The averages over OOD sets, and their row labels.
AVERAGE_LABELS = {
    "average": "Average",
    "average_no_noise": "Average (no noise)",
    "average_unshared": "Average (unshared generators)",
    "average_near": "Average near-OOD",
    "average_far": "Average far-OOD",
}


def scores_of(results: RunResults) -> list[str]:
    """The OOD scores of ``results``, the main one first: an ``evaluate``'s ``--scores``, else
    the run's (its ``budget``), else the variants' own; ``msp`` for a file that records none."""
    if results.scores:
        return list(results.scores)
    if results.budget is not None:
        return [results.budget.score]
    return [next(iter(results.variants.values())).score or "msp"]


@dataclass(frozen=True)
class Column:
    """A column of the per-OOD-set tables: one variant scored with one OOD score."""

    label: str
    variant: str
    score: str
    ood: dict[str, MetricSet]
    averages: dict[str, MetricSet | None]
    validation: MetricSet | None = None
    #: Each validation OOD set's metrics (None where the results do not record them).
    validation_sets: dict[str, MetricSet] | None = None


def validation_label(names: list[str] | None) -> str:
    """The validation row's label, naming its OOD sets; results written before the sets were
    recorded apart had the pool hold-out alone."""
    return f"Validation ({', '.join(names)})" if names else "Validation (pool hold-out)"


def validation_sets_of(results: RunResults) -> list[str] | None:
    """The validation OOD sets the results record (those of the first variant with any)."""
    for r in results.variants.values():
        if r.validation is not None and r.validation.ood:
            return list(r.validation.ood)
    return None


def columns(results: RunResults) -> list[Column]:
    """One column per variant, or per (variant, score) for an ``evaluate`` with several scores
    (labelled by the score alone where there is one variant)."""
    main = scores_of(results)[0]
    one = len(results.variants) == 1
    out = []
    for v, r in results.variants.items():
        if r.scores:
            out += [
                Column(s if one else f"{v} ({s})", v, s, sr.ood, sr.averages)
                for s, sr in r.scores.items()
            ]
        else:
            val = r.validation.average if r.validation is not None else None
            sets = r.validation.ood if r.validation is not None else None
            out.append(Column(v, v, r.score or main, r.ood, r.averages, val, sets))
    return out


def ood_rows(cols: list[Column]) -> list[tuple[str, list[MetricSet]]]:
    """(row label, one metric set per column) for every OOD set, the averages, the validation
    average and, where the results record them, each validation OOD set."""
    rows = [(s, [c.ood[s] for c in cols]) for s in cols[0].ood]
    for key, label in AVERAGE_LABELS.items():
        if all(c.averages.get(key) for c in cols):
            rows.append((label, [c.averages[key] for c in cols]))  # type: ignore[misc]
    if all(c.validation for c in cols):
        names = list(cols[0].validation_sets or ())
        if any(list(c.validation_sets or ()) != names for c in cols):
            names = []
        rows.append((validation_label(names), [c.validation for c in cols]))  # type: ignore[misc]
        for name in names if len(names) > 1 else ():  # one set: the average row is that set
            cells = [(c.validation_sets or {})[name] for c in cols]
            rows.append((f"Validation: {name}", cells))
    return rows


#: Which way is better, per metric.
LOWER_IS_BETTER = {"fpr95": True, "auroc": False, "aupr": False}


def spread_over(results: RunResults) -> str | None:
    """What the ± of the per-OOD-set tables is over, or None where they show means alone (one
    seed): seeds, or for a single evaluated model the protocol's OOD subsamples."""
    if results.seeds is not None:
        return "seeds" if len(results.seeds) > 1 else None
    return (
        "the OOD subsamples of the set (Average rows: over every subsample of every averaged "
        "set, so mostly the spread between OOD sets)"
    )


def table2(results: RunResults, metric: str = "fpr95") -> Table:
    """OOD set x column (variant, or variant and score) for one metric: mean ± std (see
    :func:`spread_over`), the best mean of a row in bold (ties all bold)."""
    cols = columns(results)
    spread = spread_over(results) is not None
    rows = []
    for label, cells in ood_rows(cols):
        means = [round(c[metric].mean, 2) for c in cells]
        best = min(means) if LOWER_IS_BETTER[metric] else max(means)
        row = [label]
        for c, mean in zip(cells, means, strict=True):
            text = pm_text(c[metric], spread)
            row.append(f"**{text}**" if len(cols) > 1 and mean == best else text)
        rows.append(row)
    return Table(["OOD set", *(c.label for c in cols)], rows)


#: OpenOOD's column names for our metric keys (its CSVs hold percentages too).
OPENOOD_COLUMNS = {
    "fpr95": "FPR@95",
    "auroc": "AUROC",
    "aupr_in": "AUPR_IN",
    "aupr_out": "AUPR_OUT",
}


def openood_csv(results: RunResults) -> str:
    """One row per (variant, OOD score, OOD set or average) in OpenOOD's column naming
    (``dataset``, ``FPR@95``, ``AUROC``, ``AUPR_IN``, ``AUPR_OUT``, ``ACC``), means over seeds
    in percent; FPR@95 is in the run's convention (see ``convention`` in results.json)."""
    header = ["variant", "score", "dataset", *OPENOOD_COLUMNS.values(), "ACC"]
    rows = []
    for c in columns(results):
        parts = [*c.ood.items()]
        parts += [(key, m) for key in AVERAGE_LABELS if (m := c.averages.get(key))]
        acc = results.variants[c.variant].accuracy
        for name, metrics in parts:
            cells = [metrics[k].mean if k in metrics else "" for k in OPENOOD_COLUMNS]
            rows.append([c.variant, c.score, name, *cells, acc])
    return csv_text(header, rows)


def _mean_std(m: MetricSummary | None) -> tuple[float, float] | tuple[str, str]:
    return ("", "") if m is None else (m.mean, m.std)


def table2_csv(results: RunResults) -> str:
    """One row per (OOD set, variant, OOD score): mean and std of each metric (with AUPR-In
    and AUPR-Out under their own names where the results hold them; empty where not), in %."""
    keys = [*METRICS, "aupr_in", "aupr_out"]
    header = ["ood_set", "variant", "score"] + [f"{m}_{s}" for m in keys for s in ("mean", "std")]
    cols = columns(results)
    rows = [
        [label, c.variant, c.score] + [x for m in keys for x in _mean_std(cell.get(m))]
        for label, cells in ood_rows(cols)
        for c, cell in zip(cols, cells, strict=True)
    ]
    return csv_text(header, rows)


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&")):
        s = s.replace(a, b)
    return s


def _tex_ms(m: MetricSummary) -> str:
    return f"${m.mean:.2f}_{{{m.std:.2f}}}$"


def table2_latex(results: RunResults) -> str:
    """The paper's Table 2 layout (booktabs): cells ``FPR95 / AUROC / AUPR``, mean with std as
    subscript (over what: :func:`spread_over`)."""
    cols = columns(results)
    lines = [
        r"\begin{tabular}{l" + "c" * len(cols) + "}",
        r"\toprule",
        "OOD set & " + " & ".join(_tex(c.label) for c in cols) + r" \\",
        r"\midrule",
    ]
    for label, cells in ood_rows(cols):
        if label == "Average":
            lines.append(r"\midrule")
        row = [" / ".join(_tex_ms(cell[m]) for m in METRICS) for cell in cells]
        lines.append(_tex(label) + " & " + " & ".join(row) + r" \\")
    over = spread_over(results)
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        "% FPR95 (lower is better) / AUROC / AUPR (higher is better), in %; "
        + (f"mean with std over {over} as subscript." if over else "means of one seed."),
        "",
    ]
    return "\n".join(lines)


def accuracy_text(r: VariantResults) -> str:
    """ID accuracy, with its std over seeds where there are several."""
    std = r.accuracy_std
    one = r.per_seed is not None and len(r.per_seed) == 1
    return f"{r.accuracy:.2f}" + (f" ± {std:.2f}" if std is not None and not one else "")


def _subset_size(r: VariantResults, absent: str) -> str:
    """Background items the variant fine-tuned on, or ``absent`` where the results do not say."""
    return absent if r.subset_size is None else f"{r.subset_size:.0f}"


def table3(results: RunResults) -> Table:
    variants = results.variants
    return Table(
        ["", *variants],
        [
            ["ID accuracy (%)"] + [accuracy_text(r) for r in variants.values()],
            ["background items"] + [_subset_size(r, "not recorded") for r in variants.values()],
        ],
    )


def table3_csv(results: RunResults) -> str:
    """One row per variant: ID accuracy (mean, std) and background items (empty where the
    results do not record them)."""
    rows = [
        [v, r.accuracy, _blank(r.accuracy_std), _blank(r.subset_size)]
        for v, r in results.variants.items()
    ]
    return csv_text(["variant", "accuracy_mean", "accuracy_std", "subset_size"], rows)


def table3_latex(results: RunResults) -> str:
    """Table 3 layout: one row per variant, ID accuracy in % (mean with std)."""
    lines = [
        r"\begin{tabular}{lcr}",
        r"\toprule",
        r"Background data & ID accuracy (\%) & background items \\",
        r"\midrule",
    ]
    for v, r in results.variants.items():
        acc = (
            _tex_ms(MetricSummary(mean=r.accuracy, std=r.accuracy_std))
            if r.accuracy_std is not None
            else f"${r.accuracy:.2f}$"
        )
        lines.append(f"{_tex(v)} & {acc} & {_subset_size(r, '--')} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def ci_text(d: PairedDifference) -> str:
    """``mean [low, high]`` of a paired difference, signed; the mean alone without a CI."""
    ci = " [{:+.2f}, {:+.2f}]".format(*d.ci95) if d.ci95 is not None else ""
    return f"{d.mean:+.2f}{ci}"


def paired(results: RunResults) -> Table:
    """One row per (pair of variants, average): the mean paired difference of each metric with
    its 95% CI and how many seeds are below zero (the per-seed values are in results.json)."""
    labels = {**AVERAGE_LABELS, "validation": validation_label(validation_sets_of(results))}
    rows = []
    for pair, by_avg in (results.paired_differences or {}).items():
        for avg, metrics in by_avg.items():
            row = [pair.replace("_minus_", " − "), labels.get(avg, avg)]
            row += [ci_text(metrics[m]) for m in METRICS]
            first = metrics[METRICS[0]].per_seed
            row.append(f"{sum(x < 0 for x in first)} of {len(first)}")
            rows.append(row)
    header = ["difference (paired per seed)", "average"]
    header += [f"Δ {METRIC_LABELS[m]} [95% CI]" for m in METRICS] + ["seeds with Δ FPR95 < 0"]
    return Table(header, rows)


def composition(results: RunResults) -> Table | None:
    """Share of each family in the pool and in each subset (mean over seeds); None without
    provenance."""
    comp = results.composition
    if not comp:
        return None
    variants = list(comp)
    first = comp[variants[0]]
    return Table(
        ["family", "pool", *(f"{v} subset" for v in variants)],
        [
            [f, f"{100 * first[f].pool:.1f}%"]
            + [f"{100 * comp[v][f].subset:.1f}%" for v in variants]
            for f in sorted(first)
        ],
    )


#: How the shifted-ID table's "flagged as OOD" is read (report and console).
SHIFTED_NOTE = (
    "Covariate-shifted ID sets (labelled digits of other sources; not OOD, so not in the OOD "
    "averages): the classifier's accuracy on each, and the share flagged as OOD at the FPR95 "
    "threshold of the evaluation, the score that flags 95% of the pooled OOD test items "
    "(OOD positive; with ID positive, the one that accepts 95% of the ID test set). A good "
    "detector keeps this share low while its accuracy stays high."
)


def _shifted_cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def shifted(results: RunResults) -> Table | None:
    """Shifted ID set x (variant: accuracy ↑, flagged as OOD ↓), mean ± std over seeds; None
    where the results have no shifted sets."""
    variants = {v: r.shifted for v, r in results.variants.items() if r.shifted}
    if not variants:
        return None
    first = next(iter(variants.values()))
    one = results.seeds is not None and len(results.seeds) == 1  # no spread to show
    header = ["shifted ID set", "items"]
    header += [f"{v}: {what}" for v in variants for what in ("accuracy ↑", "flagged as OOD ↓")]
    rows = []
    for name, row in first.items():
        cells = [name, f"{row.items:,}"]
        for sets in variants.values():
            r = sets.get(name)
            if r is None:
                cells += ["", ""]
                continue
            cells += [
                _shifted_cell(r.accuracy, None if one else r.accuracy_std),
                _shifted_cell(r.flagged, None if one else r.flagged_std),
            ]
        rows.append(cells)
    groups = [("", 2)] + [(v, 2) for v in variants]
    return Table(header, rows, groups=groups)


def shifted_csv(results: RunResults) -> str:
    """One row per (shifted ID set, variant): accuracy and share flagged as OOD (mean, std over
    seeds; std empty for one model), in percent, and the set's size."""
    header = ["shifted_set", "variant", "items", "accuracy_mean", "accuracy_std"]
    header += ["flagged_mean", "flagged_std"]
    rows = [
        [name, v, r.items, r.accuracy, _blank(r.accuracy_std), r.flagged, _blank(r.flagged_std)]
        for v, entry in results.variants.items()
        for name, r in (entry.shifted or {}).items()
    ]
    return csv_text(header, rows)


def _blank(x: float | None) -> float | str:
    return "" if x is None else x


def shifted_text(results: RunResults) -> str | None:
    """A console table of the shifted ID sets (accuracy / flagged as OOD, means), or None."""
    variants = {v: r.shifted for v, r in results.variants.items() if r.shifted}
    if not variants:
        return None
    names = list(next(iter(variants.values())))
    w, lw = 24, max(20, *(len(n) + 2 for n in names))
    out = [f"{'shifted ID set':<{lw}}" + "".join(f"{v:>{w}}" for v in variants)]
    out.append(f"{'':<{lw}}" + "".join(f"{'accuracy/flagged OOD':>{w}}" for _ in variants))
    for name in names:
        cells = [
            ("" if (r := sets.get(name)) is None else f"{r.accuracy:6.2f}/{r.flagged:6.2f}")
            for sets in variants.values()
        ]
        out.append(f"{name:<{lw}}" + "".join(c.rjust(w) for c in cells))
    return "\n".join(out)


def table2_text(results: RunResults) -> str:
    """A console table (means only) of FPR95 / AUROC / AUPR per set and column (variant, or
    variant and score); ID accuracy with its std over seeds where there are seeds (none for a
    single evaluated model)."""
    cols = columns(results)
    rows = ood_rows(cols)
    w, lw = 24, max(20, *(len(label) + 2 for label, _ in rows))
    out = [f"{'OOD set':<{lw}}" + "".join(f"{c.label:>{w}}" for c in cols)]
    out.append(f"{'':<{lw}}" + "".join(f"{'FPR95/AUROC/AUPR':>{w}}" for _ in cols))
    for label, cells in rows:
        row = "".join("/".join(f"{cell[m].mean:6.2f}" for m in METRICS).rjust(w) for cell in cells)
        out.append(f"{label:<{lw}}{row}")
    accs = "".join(accuracy_text(results.variants[c.variant]).rjust(w) for c in cols)
    out.append(f"{'ID accuracy':<{lw}}" + accs)
    return "\n".join(out)
