"""scripts/readme_table.py prints the README's table from a run's results.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "scripts/readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.table


def test_the_readme_table_holds_the_run_values_and_its_paired_differences():
    results = json.loads((ROOT / "tests/reports/data/results_run.json").read_text())
    lines = _table()(results).splitlines()
    assert lines[0].startswith("| OOD set | None | Full (100%) | Random (10%) | Resampled (10%)")
    rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    none = results["variants"]["none"]
    assert f"| {none['ood']['photos']['fpr95']['mean']:.2f} |" in rows["photos"]
    avg = results["variants"]["resampled"]["average"]["fpr95"]
    assert f"{avg['mean']:.2f} ± {avg['std']:.2f}" in rows["**Average**"]
    diff = results["paired_differences"]["resampled_minus_random"]["average"]["fpr95"]
    assert (
        f"{diff['mean']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]"
        in rows["**Average**"]
    )
    full = _table()(results, ("fpr95", "auroc", "aupr")).splitlines()
    auroc = none["ood"]["photos"]["auroc"]["mean"]
    assert any(line.startswith("| photos |") and f"/ {auroc:.2f} /" in line for line in full)
    assert full[-1].startswith("| ID accuracy |")


def test_the_validation_rows_name_the_validation_sets():
    results = json.loads((ROOT / "tests/reports/data/results_run.json").read_text())
    rows = _table()(results).splitlines()
    assert rows[-1].startswith("| *Validation (pool hold-out)* |")  # a file without the sets
    for r in results["variants"].values():
        avg = r["validation"]["average"]
        glyphs = {**avg, "fpr95": {"mean": 12.345, "std": 0.0}}
        r["validation"]["ood"] = {"pool-holdout": avg, "val-glyphs": glyphs}
    rows = _table()(results).splitlines()
    assert rows[-3].startswith("| *Validation (pool-holdout, val-glyphs)* |")
    assert rows[-2].startswith("| *Validation: pool-holdout* |")
    assert rows[-1].startswith("| *Validation: val-glyphs* | 12.35 | 12.35 |")


def test_one_validation_set_and_the_shifted_id_sets_of_the_mnist_benchmark():
    results = json.loads((ROOT / "tests/reports/data/results_run.json").read_text())
    for i, r in enumerate(results["variants"].values()):
        r["validation"]["ood"] = {"pool-holdout": r["validation"]["average"]}
        r["shifted"] = {"opencv_digits": {"accuracy": 97.5, "flagged": 10.0 + i, "items": 5000}}
    rows = _table()(results).splitlines()
    assert rows[-2].startswith("| *Validation (pool-holdout)* |")  # one set: one row
    assert not any(row.startswith("| *Validation: ") for row in rows)
    assert rows[-1].startswith(
        "| *opencv_digits* (shifted ID: acc. / % flagged) | 97.50 / 10.00 | 97.50 / 11.00 |"
    )
