"""Print the README's FPR95 table of a run folder (``bgresample run --out RUN``): one row per OOD
set, the averages with their paired FPR95 differences, the validation rows and, for the MNIST
benchmark, the covariate-shifted ID sets (accuracy / share flagged as OOD); with ``--metrics
fpr95,auroc,aupr`` each cell is "FPR95 / AUROC / AUPR" and an ID accuracy row is added (the
tables of docs/results.md).

    python scripts/readme_table.py runs/demo
    python scripts/readme_table.py runs/demo --metrics fpr95,auroc,aupr
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

AVERAGES = {
    "average": "**Average**",
    "average_no_noise": "Average (no noise)",
    "average_unshared": "Average (unshared generators)",
    "average_near": "Average near-OOD",
    "average_far": "Average far-OOD",
}
PAIRS = ("resampled_minus_random", "resampled_minus_full")


def _pair(diff: dict, key: str) -> str:
    if key not in diff:
        return ""
    d = diff[key]["fpr95"]
    lo, hi = d["ci95"]
    below = sum(v < 0 for v in d["per_seed"])
    return f"{d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}], {below}/{len(d['per_seed'])}"


def table(results: dict, metrics: tuple[str, ...] = ("fpr95",)) -> str:
    """The Markdown table of ``results.json``'s ``metrics`` (OOD positive, %)."""

    def cell(stats: dict, with_std: bool) -> str:
        first = stats[metrics[0]]
        head = f"{first['mean']:.2f}" + (f" ± {first['std']:.2f}" if with_std else "")
        return " / ".join([head, *(f"{stats[m]['mean']:.2f}" for m in metrics[1:])])

    variants = list(results["variants"])
    gamma = f"{results['budget']['gamma']:.0%}"
    names = {
        "full": "Full (100%)",
        "random": f"Random ({gamma})",
        "resampled": f"Resampled ({gamma})",
    }
    heads = [names.get(v, v.capitalize()) for v in variants]
    pairs = [p for p in PAIRS if p in results.get("paired_differences", {})]
    heads += [p.replace("_minus_", " − ").title() for p in pairs]
    lines = ["| OOD set | " + " | ".join(heads) + " |", "|---" * (1 + len(heads)) + "|"]
    first = results["variants"][variants[0]]
    blank = [""] * len(pairs)
    for name in first["ood"]:
        cells = [cell(results["variants"][v]["ood"][name], False) for v in variants]
        lines.append(f"| {name} | " + " | ".join(cells + blank) + " |")
    one = len(first["per_seed"]) == 1  # no ± for one seed
    for key, label in AVERAGES.items():
        if key not in first:
            continue
        cells = []
        means = [results["variants"][v][key]["fpr95"]["mean"] for v in variants]
        best = min(means[1:]) if len(means) > 1 else None
        for v, m in zip(variants, means, strict=True):
            text = cell(results["variants"][v][key], key == "average" and not one)
            cells.append(f"**{text}**" if key == "average" and m == best else text)
        diffs = [_pair(results["paired_differences"][p], key) for p in pairs]
        lines.append(f"| {label} | " + " | ".join(cells + diffs) + " |")
    if "validation" in first:
        val = [results["variants"][v]["validation"] for v in variants]
        sets = list(first["validation"].get("ood", {}))  # absent before the sets were recorded
        label = f"Validation ({', '.join(sets)})" if sets else "Validation (pool hold-out)"
        cells = [cell(x["average"], False) for x in val]
        lines.append(f"| *{label}* | " + " | ".join(cells + blank) + " |")
        for name in sets if len(sets) > 1 else ():  # one set: the row above is that set
            cells = [cell(x["ood"][name], False) for x in val]
            lines.append(f"| *Validation: {name}* | " + " | ".join(cells + blank) + " |")
    for name in first.get("shifted") or {}:  # covariate-shifted ID sets: accuracy / flagged
        cells = [
            "{accuracy:.2f} / {flagged:.2f}".format(**results["variants"][v]["shifted"][name])
            for v in variants
        ]
        lines.append(
            f"| *{name}* (shifted ID: acc. / % flagged) | " + " | ".join(cells + blank) + " |"
        )
    if len(metrics) > 1:
        acc = [results["variants"][v] for v in variants]
        cells = [f"{a['accuracy']:.2f} ± {a['accuracy_std']:.2f}" for a in acc]
        lines.append("| ID accuracy | " + " | ".join(cells + blank) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (holds results.json)")
    parser.add_argument("--metrics", default="fpr95", help="comma-separated (default: fpr95)")
    args = parser.parse_args()
    metrics = tuple(args.metrics.split(","))
    print(table(json.loads((args.run / "results.json").read_text()), metrics))


if __name__ == "__main__":
    main()
