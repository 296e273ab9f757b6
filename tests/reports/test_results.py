"""Typed results (bgresample.results): every results file a run writes reads back and writes
again byte for byte, and the reports built from typed results are those of the dict-based code
they replaced."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bgresample.config import default_config
from bgresample.reports import selectors, tables
from bgresample.reports.build import read_results
from bgresample.reports.document import to_markdown
from bgresample.reports.markdown import Artifacts, blocks
from bgresample.results import (
    SCHEMA,
    Budget,
    EvalProtocol,
    RunResults,
    SeedResults,
    SeedValidation,
    SeedVariant,
    SelectionCost,
)
from bgresample.runfolder import write_json

DATA = Path(__file__).parent / "data"


def _rewritten(obj: Any, tmp_path: Path) -> bytes:
    """``obj`` as the engine writes it."""
    out = tmp_path / "again.json"
    write_json(out, obj.to_json())
    return out.read_bytes()


def test_every_results_file_round_trips(
    full_run: Path, two_variant_run: Path, eval_dir: Path, tmp_path: Path
):
    paths = {}
    for run in (full_run, two_variant_run, eval_dir):
        paths[run / "results.json"] = RunResults
        for seed_dir in run.glob("seed_*"):
            paths[seed_dir / "results.json"] = SeedResults
            variants = json.loads((seed_dir / "results.json").read_text())["variants"]
            paths.update({seed_dir / f"{v}.json": SeedVariant for v in variants})
    # 3 results.json, 2 + 1 per-seed results.json, 2 x 4 + 1 x 2 per-seed variants
    assert len(paths) == 3 + 3 + 10
    for path, cls in paths.items():
        obj = cls.from_json(json.loads(path.read_text()))
        assert _rewritten(obj, tmp_path) == path.read_bytes(), path


def test_typed_attributes_hold_the_files_values(full_run: Path, eval_dir: Path):
    raw = json.loads((full_run / "results.json").read_text())
    res = read_results(full_run)
    assert res.schema == SCHEMA and res.quick and res.seeds == [0, 1]
    assert isinstance(res.budget, Budget) and res.budget.k == raw["budget"]["k"]
    assert isinstance(res.selection["resampled"], SelectionCost)
    assert res.selection["resampled"].fwd_eq == raw["selection"]["resampled"]["fwd_eq"]
    r, d = res.variants["resampled"], raw["variants"]["resampled"]
    assert r.average["fpr95"].mean == d["average"]["fpr95"]["mean"]
    assert r.ood["glyphs"]["aupr_in"].std == d["ood"]["glyphs"]["aupr_in"]["std"]
    assert r.validation.accuracy.mean == d["validation"]["accuracy"]["mean"]
    assert [p.seed for p in r.per_seed] == [0, 1]
    pair = res.paired_differences["resampled_minus_random"]["average"]["fpr95"]
    assert (
        pair.ci95 == raw["paired_differences"]["resampled_minus_random"]["average"]["fpr95"]["ci95"]
    )
    assert res.resample.weight_by_family == raw["resample"]["weight_by_family"]
    seed = SeedResults.from_json(json.loads((full_run / "seed_0/results.json").read_text()))
    assert seed.variants["resampled"].selection.budget == res.budget.k
    assert seed.variants["resampled"].evaluation.score == "msp"
    ev = read_results(eval_dir)
    assert ev.scores == ["msp", "energy"] and isinstance(ev.protocol, EvalProtocol)
    model = ev.variants["model"]
    assert list(model.scores) == ["msp", "energy"]
    assert model.scores["msp"].ood == model.ood and model.accuracy_std is None


def _older(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` as a results file before schema 2 and the near/far averages, validation, AUPR-In/Out
    and the selection costs in forward-pass equivalents and seconds."""
    d = copy.deepcopy(d)
    for key in ("schema", "budget", "fpr95", "protocol", "groups", "quick"):
        d.pop(key)
    for cost in d["selection"].values():
        del cost["fwd_eq"], cost["seconds"]
    for r in d["variants"].values():
        for key in ("validation", "average_near", "average_far", "average_unshared"):
            del r[key]
        for metrics in [*r["ood"].values(), r["average"], r["average_no_noise"]]:
            del metrics["aupr_in"], metrics["aupr_out"]
    for by_avg in d["paired_differences"].values():
        for key in ("validation", "average_near", "average_far", "average_unshared"):
            del by_avg[key]
    return d


def _report_pieces(results: RunResults) -> dict[str, str]:
    cfg = default_config()
    cfg.model.name, cfg.select.gamma, cfg.select.method = "resnet", 0.1, "sample"
    cfg.evaluate.repeats, cfg.evaluate.ratio = 5, 0.2
    # the --quick run's sizes, which its banner states
    cfg.data.embedded.pool_size, cfg.pretrain.epochs, cfg.finetune.epochs = 4000, 8, 4
    meta = {"code_version": "v0", "command": "run", "started": "2020-06-14T00:00:00"}
    out = {
        # without the last block, the config dump
        "report.md": to_markdown(blocks(results, cfg, meta, Artifacts(tables=True))[:-1]),
        "table2.csv": tables.table2_csv(results),
        "table2.tex": tables.table2_latex(results),
        "openood.csv": tables.openood_csv(results),
        "table3.csv": tables.table3_csv(results),
        "table3.tex": tables.table3_latex(results),
        "table2.html": tables.table2(results).html(),
        "table2.txt": tables.table2_text(results),
        "selectors.md": selectors.summary_table(results).markdown(),
        "selectors_cost.md": selectors.cost_table(results).markdown(),
    }
    if results.budget is not None:
        section = selectors.report_section(results, Path("figures/pareto.png"))
        out["selectors_section.md"] = to_markdown(section)
    return out


@pytest.mark.parametrize("schema", ["current", "older"])
def test_reports_from_typed_results_are_unchanged(schema: str):
    """``results_run.expected.json`` holds these report pieces for ``results_run.json`` (a
    2-seed run --quick cut to 3 OOD sets) and for an older file without the keys later versions
    added: first as the dict-based reports (before bgresample.results) wrote them, then
    rewritten once for the readable report (headline, one Table 2 per metric, a score column in
    the CSVs, the selectors' cost table)."""
    data = json.loads((DATA / "results_run.json").read_text())
    if schema == "older":
        data = _older(data)
    results = RunResults.from_json(data)
    assert results.to_json() == data
    expected = json.loads((DATA / "results_run.expected.json").read_text())[schema]
    assert _report_pieces(results) == expected


def test_one_seed_shows_means_without_a_spread():
    """A single seed has no std over seeds: the tables print the mean alone, never "± 0.00"."""
    from dataclasses import replace

    from bgresample.reports.tables import table2, table3

    data = json.loads((DATA / "results_run.json").read_text())
    results = RunResults.from_json(data)
    assert "±" in table2(results).markdown()
    one = replace(results, seeds=results.seeds[:1])
    one.variants = {
        k: replace(v, per_seed=(v.per_seed or [])[:1]) for k, v in results.variants.items()
    }
    assert "±" not in table2(one).markdown() and "±" not in table3(one).markdown()


def _with_validation_sets(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with per-set validation metrics: pool-holdout as the file's average, val-glyphs 10
    points of FPR95 above it (a distinct value per variant)."""
    d = copy.deepcopy(d)
    for i, r in enumerate(d["variants"].values()):
        avg = r["validation"]["average"]
        glyphs = copy.deepcopy(avg)
        glyphs["fpr95"]["mean"] = avg["fpr95"]["mean"] - 10 - i
        r["validation"]["ood"] = {"pool-holdout": copy.deepcopy(avg), "val-glyphs": glyphs}
    return d


def test_validation_sets_read_back_and_get_rows_of_their_own():
    data = json.loads((DATA / "results_run.json").read_text())
    old = RunResults.from_json(data)
    # a file without per-set validation metrics: the pool hold-out alone, as before
    assert old.variants["none"].validation.ood is None
    labels = [label for label, _ in tables.ood_rows(tables.columns(old))]
    assert labels[-1] == "Validation (pool hold-out)"
    d = _with_validation_sets(data)
    results = RunResults.from_json(d)
    assert results.to_json() == d  # the per-set metrics are written back as read
    val = results.variants["random"].validation
    assert list(val.ood) == ["pool-holdout", "val-glyphs"]
    assert (
        val.ood["val-glyphs"]["fpr95"].mean
        == d["variants"]["random"]["validation"]["ood"]["val-glyphs"]["fpr95"]["mean"]
    )
    rows = tables.ood_rows(tables.columns(results))
    assert [label for label, _ in rows[-3:]] == [
        "Validation (pool-holdout, val-glyphs)",
        "Validation: pool-holdout",
        "Validation: val-glyphs",
    ]
    glyph_row = rows[-1][1]
    for cell, r in zip(glyph_row, d["variants"].values(), strict=True):
        assert cell["fpr95"].mean == r["validation"]["ood"]["val-glyphs"]["fpr95"]["mean"]
    md = tables.table2(results).markdown()
    assert "| Validation (pool-holdout, val-glyphs) |" in md and "| Validation: val-glyphs |" in md
    assert "Validation: val-glyphs," in tables.table2_csv(results)
    paired = tables.paired(results).markdown()
    assert "Validation (pool-holdout, val-glyphs)" in paired and "pool hold-out" not in paired


def test_one_validation_set_gets_one_row():
    """The MNIST benchmark validates on the pool hold-out alone: its average row is that set, so
    no second row repeats it."""
    d = _with_validation_sets(json.loads((DATA / "results_run.json").read_text()))
    for r in d["variants"].values():
        del r["validation"]["ood"]["val-glyphs"]
    labels = [label for label, _ in tables.ood_rows(tables.columns(RunResults.from_json(d)))]
    assert labels[-1] == "Validation (pool-holdout)"
    assert not any(label.startswith("Validation:") for label in labels)


def test_seed_validation_reads_files_with_and_without_per_set_metrics():
    metrics = {"fpr95": {"mean": 1.0, "std": 0.0}, "auroc": {"mean": 99.0, "std": 0.0}}
    old = {"accuracy": 90.0, "average": metrics}
    assert SeedValidation.from_json(old).ood is None
    assert SeedValidation.from_json(old).to_json() == old
    new = {**old, "ood": {"pool-holdout": metrics, "val-glyphs": metrics}}
    read = SeedValidation.from_json(new)
    assert read.ood["val-glyphs"]["auroc"].mean == 99.0 and read.to_json() == new
