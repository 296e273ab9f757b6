"""The report of a run as blocks (:mod:`bgresample.reports.document`), written as ``report.md``.

Tables 2 and 3 analogues, paired differences, subset composition, resampling diagnostics, the
figures and galleries with short explanations, the run's seeds, code version, wall times and
config. The same blocks make the self-contained ``report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgresample.config import Config, dump
from bgresample.engine.aggregate import PAIRS
from bgresample.reports import tables
from bgresample.reports.document import Block, Bullets, Code, Heading, Headline, Image, Text
from bgresample.reports.figures import benchmark_name, benchmark_title, score_names
from bgresample.results import EvalProtocol, RunResults

VARIANT_NOTES = {
    "none": (
        "**none**: fine-tuned on ID data alone (γ = 0); with MSP, the baseline of Hendrycks & "
        "Gimpel"
    ),
    "full": "**full**: fine-tuned with the whole background pool (γ = 100%)",
    "random": "**random**: fine-tuned with a random subset of the pool of ratio γ",
    "resampled": "**resampled**: fine-tuned with a subset of ratio γ chosen by the learned "
    "background weights (adversarial resampling, the paper's method)",
}


@dataclass
class Artifacts:
    """Files (relative to the run folder) that the report shows, and why others are missing."""

    seed: int | None = None
    scores: dict[str, str] = field(default_factory=dict)
    resampling: str | None = None
    weight_gallery: str | None = None
    missed_gallery: str | None = None
    tables: bool = False
    #: The OOD score the figures and galleries show (the run's: :func:`tables.scores_of`).
    score: str = "msp"
    notes: list[str] = field(default_factory=list)
    #: Blocks placed after the standard sections (the compare-selectors section).
    extra: list[Block] = field(default_factory=list)


def _score_note(scores: list[str]) -> str:
    if scores == ["msp"]:
        return (
            "Every model scores an image by its **MSP** (maximum softmax probability): high "
            "MSP = looks in-distribution (ID), low MSP = looks out-of-distribution (OOD)."
        )
    if len(scores) == 1:
        short, label = score_names(scores[0])
        return (
            f"Every model scores an image by the **{scores[0]}** score ({label}): high = looks "
            "in-distribution (ID), low = looks out-of-distribution (OOD)."
            + (f" The figures call it {short}." if short != scores[0] else "")
        )
    named = "; ".join(f"**{s}**: {score_names(s)[1]}" for s in scores)
    return (
        f"The model is scored by {len(scores)} OOD scores, one table column each ({named}); "
        "for each, high = looks in-distribution (ID), low = looks out-of-distribution (OOD)."
    )


def _protocol(results: RunResults, cfg: Config) -> str:
    """What one value of the tables is: the evaluation protocol, in words."""
    p = results.protocol
    name = p.name if isinstance(p, EvalProtocol) else p or cfg.evaluate.protocol
    if name == "full":
        return "measured on every item of each OOD set once"
    if isinstance(p, EvalProtocol):
        ratio, repeats = p.ratio, p.repeats
    else:
        ratio, repeats = cfg.evaluate.ratio, cfg.evaluate.repeats
    return (
        f"the mean over {repeats} OOD subsamples of {ratio} × |ID test| items per set (the "
        "paper's protocol)"
    )


def _spread_note(results: RunResults, cfg: Config) -> str:
    """What the tables' values and their ± are."""
    protocol = _protocol(results, cfg)
    over = tables.spread_over(results)
    if results.seeds is None:
        return f"Tables give one model's values, each {protocol}; ± is the std over {over}."
    if over is None:
        return f"Tables give the values of one seed (no spread to show), each {protocol}."
    return (
        f"Tables give the mean ± std over {len(results.seeds)} seeds; each seed's value is "
        f"{protocol}."
    )


def _label(variant: str, gamma: float) -> str:
    """A variant's name as the headline writes it, with its share of the pool."""
    share = {
        "full": " (100%)",
        "random": f" ({100 * gamma:g}%)",
        "resampled": f" ({100 * gamma:g}%)",
    }
    return variant.capitalize() + share.get(variant, "")


def headline(results: RunResults, cfg: Config) -> str:
    """The report's one-line result: the first of the paired differences of average FPR95
    (resampled − random, resampled − full, random − full) with its 95% CI and how many seeds
    favour it; without one, each column's average FPR95."""
    n_sets = len(next(iter(results.variants.values())).ood)
    pairs = results.paired_differences or {}
    for a, b in PAIRS:
        d = pairs.get(f"{a}_minus_{b}", {}).get("average", {}).get("fpr95")
        if d is None:
            continue
        fa, fb = (results.variants[v].average["fpr95"].mean for v in (a, b))
        below, n = sum(x < 0 for x in d.per_seed), len(d.per_seed)
        ci = " (95% CI)" if d.ci95 is not None else ""
        return (
            f"**{_label(a, cfg.select.gamma)}: average FPR95 {fa:.2f} vs "
            f"{_label(b, cfg.select.gamma)} {fb:.2f}** over {n_sets} OOD sets: "
            f"{tables.ci_text(d)}{ci} paired by seed, lower in {below}/{n} "
            f"seed{'s' if n != 1 else ''}"
        )
    fpr = {c.label: c.averages["average"]["fpr95"].mean for c in tables.columns(results)}
    best = min(fpr, key=fpr.__getitem__)
    values = ", ".join(f"{k} {v:.2f}" for k, v in fpr.items())
    who = f"Checkpoint `{Path(results.checkpoint).name}`: " if results.checkpoint else ""
    lowest = f"; lowest: {best}" if len(fpr) > 1 else ""
    return f"**{who}average FPR95 over {n_sets} OOD sets: {values}**{lowest}"


def _header(results: RunResults, cfg: Config, meta: dict[str, Any]) -> list[Block]:
    bench = benchmark_name(results, cfg)
    variants = list(results.variants)
    seeds = len(results.seeds or []) or 1
    banner = [Text(f"**{tables.quick_banner_for(cfg, results)}**")] if results.quick else []
    scores = tables.scores_of(results)
    n_sets = len(next(iter(results.variants.values())).ood)
    pool = [] if results.pool_size is None else [f"background pool of {results.pool_size:,} items"]
    named = ", ".join(f"**{s}**" for s in scores)
    what = [f"OOD score{'s' if len(scores) > 1 else ''} {named}"]
    run = [f"code version `{meta.get('code_version', 'unknown')}`"]
    run.append(f"started {meta.get('started', 'unknown')}")
    if results.checkpoint is not None:
        fields = [
            f"Checkpoint `{results.checkpoint}` evaluated on benchmark **{bench}** "
            f"({n_sets} OOD sets)",
            *pool,
            f"model `{cfg.model.name}`",
            *what,
            f"evaluation seed {meta.get('seed', cfg.seed)}",
        ]
        notes = [f"**{v}**: the evaluated checkpoint" for v in variants]
    else:
        fields = [
            f"Benchmark **{bench}** ({n_sets} OOD sets)",
            *pool,
            f"model `{cfg.model.name}`",
            f"{seeds} seed{'s' if seeds != 1 else ''}",
            f"γ = {cfg.select.gamma} (selection `{cfg.select.method}`)",
            *what,
        ]
        notes = [VARIANT_NOTES.get(v, f"**{v}**") for v in variants]
    return [
        Heading(f"bgresample {meta.get('command', 'run')} report: {benchmark_title(bench)}", 1),
        *banner,
        Headline(headline(results, cfg)),
        Text(", ".join(fields + run) + "."),
        Heading("How to read this report"),
        Bullets(
            notes
            + [
                _score_note(scores),
                tables.CONVENTION_NOTE[results.convention or "ood-positive"],
                "**FPR95** (lower is better): share of ID test images wrongly flagged as OOD when "
                "the threshold catches 95% of the OOD images. **AUROC** and **AUPR** (higher is "
                "better): threshold-free separation of ID and OOD; 100 is perfect. All in %.",
                _spread_note(results, cfg),
            ]
        ),
    ]


def _tables(results: RunResults, cfg: Config, art: Artifacts) -> list[Block]:
    over = tables.spread_over(results)
    spread = f"mean ± std over {over}" if over else "values of one seed"
    multi = len(tables.scores_of(results)) > 1
    cols = "one column per variant and OOD score" if multi else "one column per variant"
    out: list[Block] = [
        Heading("OOD detection (Table 2 analogue)"),
        Text(f"One table per metric, {cols}; {spread}; the best mean of a row in bold."),
    ]
    for m in tables.METRICS:
        out += [Heading(tables.METRIC_LABELS[m] + " (%)", 3), tables.table2(results, m)]
    if art.tables:
        out.append(
            Text(
                "Also as [CSV](tables/table2.csv) (with AUPR-In and AUPR-Out), "
                "[LaTeX](tables/table2.tex) and in OpenOOD's columns "
                "([openood.csv](tables/openood.csv))."
            )
        )
    out += [Heading("ID accuracy (Table 3 analogue)"), tables.table3(results)]
    if art.tables:
        out.append(Text("Also as [CSV](tables/table3.csv) and [LaTeX](tables/table3.tex)."))
    shifted = tables.shifted(results)
    if shifted is not None:
        out += [
            Heading("Covariate-shifted ID sets (not OOD)"),
            Text(
                f"{tables.SHIFTED_NOTE} Accuracy ↑ and flagged as OOD ↓ in %, "
                + ("mean ± std over seeds." if over == "seeds" else "values of one model.")
            ),
            shifted,
        ]
        notes = _shifted_notes(
            list(next(r.shifted for r in results.variants.values() if r.shifted))
        )
        if notes:
            out.append(Bullets(notes))
        if art.tables:
            out.append(Text("Also as [CSV](tables/shifted.csv)."))
    if results.paired_differences:
        out += [
            Heading("Paired differences"),
            Text(
                "Per seed, the two variants share the pre-trained model, the ID batches and the "
                "evaluation subsamples, so their difference is measured with less noise than "
                "the table's stds suggest. Negative FPR95 / positive AUROC, AUPR favour the "
                "first variant; a 95% CI that excludes 0 is a difference beyond seed noise."
            ),
            tables.paired(results),
        ]
    return out


def _shifted_notes(names: list[str]) -> list[str]:
    """What each of the MNIST benchmark's shifted sets is (none for other names)."""
    from bgresample.data.mnist_bench import SHIFTED_NOTES

    return [f"**{n}**: {SHIFTED_NOTES[n]}" for n in names if n in SHIFTED_NOTES]


def _figure1(results: RunResults, cfg: Config, art: Artifacts) -> list[Block]:
    if not art.scores:
        return []
    short = score_names(art.score)[0]
    out: list[Block] = [
        Heading("Score distributions and detection curves (Figure 1 analogue)"),
        Text(
            f"One figure per OOD set, from the scores of seed {art.seed} (every ID test image "
            f"and every OOD item the protocol scored). Top: histograms of the {short} of ID "
            "test images (**blue**) and OOD images (**red**) for each variant; a good detector "
            "pushes red to the left, away from blue. Bottom: ROC and precision-recall curves "
            "with OOD as the positive class, one line per variant, over all the scored items; "
            "the PR curve weights the OOD items down to the OOD share of one protocol "
            "subsample, the share the tables' AUPR is measured at (unweighted, a set scored "
            "over several subsamples would have a larger share and a higher AUPR)."
            + (
                f" The legend gives seed {art.seed}'s values as the tables measure them "
                f"({_protocol(results, cfg)}); the tables average them over seeds."
                if (results.convention or "ood-positive") == "ood-positive"
                else ""
            )
        ),
    ]
    for ood_set, path in art.scores.items():
        out += [
            Heading(f"OOD set: {ood_set}", 3),
            Image(
                path,
                f"{short} histograms and ROC / PR curves for {ood_set}",
                f"ID test (blue) vs {ood_set} (red), seed {art.seed}. ROC: higher and further "
                "left is better; the dashed line at TPR 95% is where FPR95 is read. PR: higher "
                "is better; the dotted line is a detector that guesses.",
            ),
        ]
    return out


def _resampling(results: RunResults, art: Artifacts) -> list[Block]:
    r = results.resample
    comp = tables.composition(results)
    if not (r or comp or art.resampling):
        return []
    out: list[Block] = [Heading("Background resampling")]
    if r:
        fam = ", ".join(f"{f} {v:.2f}" for f, v in r.weight_by_family.items())
        out.append(
            Bullets(
                [
                    f"draws per pool item: {r.draws_per_item:.2f}; never drawn: "
                    f"{100 * r.never_drawn:.1f}% of the pool",
                    "Spearman correlation of learned weight with draw count: "
                    f"{r.weight_draws_spearman:.2f}",
                ]
                + ([f"mean weight per family (pool mean = 1): {fam}"] if fam else [])
            )
        )
    if comp:
        out += [
            Text(
                "What the subsets are made of (share of each family, mean over seeds): a family "
                "whose share in the resampled subset exceeds its share in the pool is one the "
                "learned weights favour."
            ),
            comp,
        ]
    if art.resampling:
        out.append(
            Image(
                art.resampling,
                "Resampling diagnostics",
                f"Seed {art.seed}. Top left: learned weights of all pool items (log scales), "
                "one outline per family, overlaid; items with high weight are the hard, ID-like "
                "background the adversarial sampler draws most. Top right: weights of a few "
                "traced items over the resampling steps, with the pool's min–max band and "
                "median. Bottom left: "
                "effective sample size of the sampling distribution (100% = uniform; falling "
                "means sampling concentrates on fewer items). Bottom right: family shares in "
                "the pool and the subsets.",
            )
        )
    return out


def _galleries(art: Artifacts) -> list[Block]:
    out: list[Block] = []
    if art.weight_gallery:
        out.append(
            Image(
                art.weight_gallery,
                "Highest and lowest weighted pool images",
                f"Seed {art.seed}: pool images with the highest (top) and lowest (bottom) learned "
                "weights, with weight and family.",
            )
        )
    if art.missed_gallery:
        out.append(
            Image(
                art.missed_gallery,
                "OOD test images each variant misses most",
                f"Seed {art.seed}: per variant, the scored OOD test images with the highest "
                f"{score_names(art.score)[0]} (the most confidently mistaken for ID), with their "
                "set and score" + (" (1 = certain ID)." if art.score == "msp" else "."),
            )
        )
    return [Heading("Galleries"), *out] if out else []


def _run_info(
    results: RunResults, cfg: Config, meta: dict[str, Any], art: Artifacts
) -> list[Block]:
    keys = ("code_version", "command", "started", "torch", "cpu_capability")
    info = [f"{k}: `{meta[k]}`" for k in keys if k in meta]
    seeds = results.seeds if results.seeds is not None else [meta.get("seed", cfg.seed)]
    info.append(f"seeds: {seeds}")
    out: list[Block] = [Heading("Run information"), Bullets(info)]
    timing = results.timing_s
    if timing:
        total = timing.get("total") or sum(timing.values())
        out += [
            Heading("Wall time per stage", 3),
            tables.Table(
                ["stage", "seconds", "share of total"],
                [[k, f"{v:.1f}", f"{100 * v / total:.0f}%"] for k, v in timing.items()],
            ),
        ]
    if art.notes:
        out += [Heading("Not in this report", 3), Bullets(art.notes)]
    return out + [Heading("Config", 3), Code(dump(cfg), "yaml")]


def blocks(
    results: RunResults,
    cfg: Config,
    meta: dict[str, Any] | None = None,
    artifacts: Artifacts | None = None,
) -> list[Block]:
    """The whole report; ``artifacts`` names the figures and galleries to show."""
    meta = meta or {}
    art = artifacts or Artifacts()
    return (
        _header(results, cfg, meta)
        + _tables(results, cfg, art)
        + _figure1(results, cfg, art)
        + _resampling(results, art)
        + _galleries(art)
        + art.extra
        + _run_info(results, cfg, meta, art)
    )
