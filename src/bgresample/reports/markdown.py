"""``report.md``: the Table 2 / Table 3 analogues, paired differences, subset composition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bgresample.checkpoint import atomic_write_text
from bgresample.config import dump
from bgresample.reports import tables


def render(results: dict[str, Any], cfg: dict[str, Any]) -> str:
    seeds = results.get("seeds", [])
    parts = [
        "# bgresample run report",
        "",
        f"Benchmark: **{results.get('benchmark', '?')}**, pool of {results.get('pool_size', '?')} "
        f"items, model `{cfg['model']['name']}`, seeds {seeds}, gamma = {cfg['select']['gamma']}.",
        "",
        "## OOD detection (Table 2 analogue)",
        "",
        "FPR95 / AUROC / AUPR in %, mean ± std over seeds (each seed: mean of "
        f"{cfg['evaluate']['repeats']} subsamples of {cfg['evaluate']['ratio']} × |ID test|). "
        + tables.CONVENTION_NOTE[results["convention"]],
        "",
        tables.table2_markdown(results),
        "",
        "## ID accuracy (Table 3 analogue)",
        "",
        tables.table3_markdown(results),
        "",
    ]
    if results.get("paired_differences"):
        parts += [
            "## Paired differences",
            "",
            "Per seed, the two variants share the pre-trained model, the ID batches and the "
            "evaluation subsamples; negative FPR95 / positive AUROC, AUPR favour the first.",
            "",
            tables.paired_markdown(results),
            "",
        ]
    comp = tables.composition_markdown(results)
    if comp:
        parts += ["## What the subsets are made of", "", comp, ""]
    if results.get("resample"):
        r = results["resample"]
        fam = ", ".join(f"{f} {v:.2f}" for f, v in r["weight_by_family"].items())
        parts += [
            "## Resampling diagnostics",
            "",
            f"- draws per pool item: {r['draws_per_item']:.2f}; never drawn: "
            f"{100 * r['never_drawn']:.1f}% of the pool",
            "- Spearman correlation of learned weight with draw count: "
            f"{r['weight_draws_spearman']:.2f}",
            f"- mean weight per family (pool mean = 1): {fam}",
            "",
        ]
    if results.get("timing_s"):
        parts += ["## Wall time", ""]
        parts += [f"- {k}: {v:.1f} s" for k, v in results["timing_s"].items()]
        parts.append("")
    parts += ["## Config", "", "```yaml", dump(cfg).rstrip(), "```", ""]
    return "\n".join(parts)


def write_report(out: Path, results: dict[str, Any], cfg: dict[str, Any]) -> Path:
    path = out / "report.md"
    atomic_write_text(path, render(results, cfg))
    return path
