"""Metrics people can compare: whole-set evaluation, near/far-OOD averages, AUPR-In/Out under
their own names, sample std over seeds, and a CSV in OpenOOD's column naming."""

from __future__ import annotations

import csv
import json

import numpy as np

from bgresample.cli import main
from bgresample.results import RunResults, SeedVariant


def test_full_protocol_near_far_and_openood_csv(tiny, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), *tiny, "--set", "run.variants=none,random"]
    assert main([*args, "--set", "evaluate.protocol=full"]) == 0
    res = json.loads((out / "results.json").read_text())
    typed = RunResults.from_json(res)
    assert typed.to_json() == res and typed.protocol == "full"
    assert res["groups"]["near"] == ["digits89", "glyphs", "scribbles"]
    assert set(res["groups"]["far"]) == set(res["ood_sets"]) - set(res["groups"]["near"])
    random = res["variants"]["random"]
    for key in ("average_near", "average_far", "average_unshared"):
        assert set(random[key]) == {"fpr95", "auroc", "aupr", "aupr_in", "aupr_out"}
    assert random["ood"]["glyphs"]["aupr"] == random["ood"]["glyphs"]["aupr_out"]  # OOD positive
    # one repeat over whole sets: nothing varies within a seed
    seed_res = SeedVariant.from_json(json.loads((out / "seed_0" / "random.json").read_text()))
    assert all(m.std == 0.0 for s in seed_res.evaluation.ood.values() for m in s.values())
    # std over the 2 seeds is the sample std (ddof=1)
    per_seed = [p["accuracy"] for p in random["per_seed"]]
    assert np.isclose(random["accuracy_std"], np.std(per_seed, ddof=1))
    with open(out / "tables" / "openood.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = ["variant", "score", "dataset", "FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]
    assert list(rows[0]) == columns
    glyphs = next(r for r in rows if r["variant"] == "random" and r["dataset"] == "glyphs")
    assert {r["score"] for r in rows} == {"msp"}
    assert float(glyphs["AUPR_IN"]) == random["ood"]["glyphs"]["aupr_in"]["mean"]
    assert {"average_near", "average_far"} <= {r["dataset"] for r in rows}
    report = (out / "report.md").read_text()
    assert "Average near-OOD" in report and "Average far-OOD" in report


def test_near_ood_names_must_be_ood_sets(tiny, tmp_path, capsys):
    args = ["run", "--out", str(tmp_path / "r"), *tiny, "--set", "evaluate.near_ood=[nope]"]
    assert main(args) == 2
    assert "evaluate.near_ood names nope" in capsys.readouterr().err
