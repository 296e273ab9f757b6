"""The paper's Table 2 (OOD detection per set) and Table 3 (ID accuracy) from ``results.json``."""

from __future__ import annotations

from typing import Any

METRIC_LABELS = {"fpr95": "FPR95 ↓", "auroc": "AUROC ↑", "aupr": "AUPR ↑"}
CONVENTION_NOTE = {
    "ood-positive": "OOD is the positive class (the paper's convention); AUPR is AUPR-Out.",
    "id-positive": "ID is the positive class; FPR95 is the share of OOD accepted at 95% ID TPR.",
}


def _cell(m: dict[str, Any]) -> str:
    return " / ".join(f"{m[k]['mean']:.2f} ± {m[k]['std']:.2f}" for k in ("fpr95", "auroc", "aupr"))


def ood_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """(row label, {variant: metrics}) for every OOD set and the two averages."""
    variants = results["variants"]
    first = next(iter(variants.values()))
    rows = [(s, {v: variants[v]["ood"][s] for v in variants}) for s in first["ood"]]
    for key, label in (("average", "Average"), ("average_no_noise", "Average (no noise)")):
        if all(key in variants[v] and variants[v][key] for v in variants):
            rows.append((label, {v: variants[v][key] for v in variants}))
    return rows


def table2_markdown(results: dict[str, Any]) -> str:
    variants = list(results["variants"])
    head = "| OOD set | " + " | ".join(variants) + " |"
    lines = [head, "|---" * (len(variants) + 1) + "|"]
    for label, cells in ood_rows(results):
        name = f"**{label}**" if label.startswith("Average") else label
        lines.append(f"| {name} | " + " | ".join(_cell(cells[v]) for v in variants) + " |")
    return "\n".join(lines)


def table3_markdown(results: dict[str, Any]) -> str:
    variants = results["variants"]
    lines = ["| | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    lines.append(
        "| ID accuracy (%) | "
        + " | ".join(
            f"{variants[v]['accuracy']:.2f} ± {variants[v]['accuracy_std']:.2f}" for v in variants
        )
        + " |"
    )
    lines.append(
        "| background items | "
        + " | ".join(f"{variants[v].get('subset_size', 0):.0f}" for v in variants)
        + " |"
    )
    return "\n".join(lines)


def paired_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| difference (per seed, paired) | metric | mean | 95% CI | per seed |",
        "|---|---|---|---|---|",
    ]
    for pair, by_avg in results.get("paired_differences", {}).items():
        for avg, metrics in by_avg.items():
            for m, d in metrics.items():
                ci = "[{:.2f}, {:.2f}]".format(*d["ci95"]) if "ci95" in d else "n/a"
                per = ", ".join(f"{x:+.2f}" for x in d["per_seed"])
                label = pair.replace("_minus_", " − ") + f" ({avg.replace('_', ' ')})"
                lines.append(f"| {label} | {m} | {d['mean']:+.2f} | {ci} | {per} |")
    return "\n".join(lines)


def composition_markdown(results: dict[str, Any]) -> str:
    comp = results.get("composition")
    if not comp:
        return ""
    fams = sorted(next(iter(comp.values())))
    variants = list(comp)
    lines = [
        "| family | pool | " + " | ".join(f"{v} subset" for v in variants) + " |",
        "|---" * (len(variants) + 2) + "|",
    ]
    for f in fams:
        pool = next(iter(comp.values()))[f]["pool"]
        cells = " | ".join(f"{100 * comp[v][f]['subset']:.1f}%" for v in variants)
        lines.append(f"| {f} | {100 * pool:.1f}% | {cells} |")
    return "\n".join(lines)


def table2_text(results: dict[str, Any]) -> str:
    """A console table (means only) of FPR95 / AUROC / AUPR per set and variant."""
    variants = list(results["variants"])
    w = 24
    out = [f"{'OOD set':<20}" + "".join(f"{v:>{w}}" for v in variants)]
    out.append(f"{'':<20}" + "".join(f"{'FPR95/AUROC/AUPR':>{w}}" for _ in variants))
    for label, cells in ood_rows(results):
        row = "".join(
            f"{cells[v]['fpr95']['mean']:6.2f}/{cells[v]['auroc']['mean']:6.2f}/{cells[v]['aupr']['mean']:6.2f}".rjust(
                w
            )
            for v in variants
        )
        out.append(f"{label:<20}{row}")
    accs = results["variants"]
    out.append(
        f"{'ID accuracy':<20}"
        + "".join(
            f"{accs[v]['accuracy']:.2f} ± {accs[v].get('accuracy_std', 0.0):.2f}".rjust(w)
            for v in variants
        )
    )
    return "\n".join(out)
