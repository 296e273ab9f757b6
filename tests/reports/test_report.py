"""Reports rebuilt from finished run folders: files, images, HTML, tables, comparison."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bgresample.cli import main
from bgresample.data.base import ImageArray
from bgresample.errors import UserError
from bgresample.reports import figures, galleries
from bgresample.reports.build import build_report
from bgresample.reports.compare import (
    compare_records,
    compare_runs,
    compare_table,
    compare_text,
    config_differences,
    paired_records,
)

TABLES = ("table2.csv", "table2.tex", "table3.csv", "table3.tex")


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _px(inches: tuple[float, float]) -> tuple[int, int]:
    """Pixel size of a PNG of that many inches (Agg truncates)."""
    return int(inches[0] * figures.DPI), int(inches[1] * figures.DPI)


def test_every_file_exists_and_pngs_decode(full_run: Path):
    res = _results(full_run)
    n_variants = len(res["variants"])
    expected = {f"figures/scores_{s}.png": _px(figures.SCORES_INCHES) for s in res["ood_sets"]}
    expected["figures/resampling.png"] = _px(figures.RESAMPLING_INCHES)
    expected["figures/gallery_weights.png"] = _px(
        galleries.gallery_inches([galleries.WEIGHT_ROWS] * 2)
    )
    expected["figures/gallery_missed_ood.png"] = _px(galleries.gallery_inches([1] * n_variants))
    for rel, size in expected.items():
        with Image.open(full_run / rel) as img:
            img.load()
            assert img.size == size, rel
    for s in res["ood_sets"]:
        assert (full_run / f"figures/scores_{s}.svg").stat().st_size > 0
    assert (full_run / "figures/resampling.svg").is_file()
    for name in ("report.md", "report.html", *(f"tables/{t}" for t in TABLES)):
        assert (full_run / name).stat().st_size > 0, name
    md = (full_run / "report.md").read_text()
    for rel in expected:
        assert f"]({rel})" in md, rel


def test_html_is_self_contained(full_run: Path):
    page = (full_run / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # one score figure per OOD set, resampling views, two galleries and the selectors' Pareto plot
    assert len(srcs) == len(_results(full_run)["ood_sets"]) + 4
    assert "<link" not in page and "<script" not in page
    assert "<table>" in page and "OOD is the positive class" in page


def test_tables_match_results(full_run: Path):
    res = _results(full_run)
    with open(full_run / "tables/table2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_key = {(r["ood_set"], r["variant"]): r for r in rows}
    for v, r in res["variants"].items():
        for s, metrics in r["ood"].items():
            for m, d in metrics.items():
                assert float(by_key[(s, v)][f"{m}_mean"]) == d["mean"]
                assert float(by_key[(s, v)][f"{m}_std"]) == d["std"]
        for m, d in r["average"].items():
            assert float(by_key[("Average", v)][f"{m}_mean"]) == d["mean"]
    with open(full_run / "tables/table3.csv", newline="") as f:
        acc = {r["variant"]: r for r in csv.DictReader(f)}
    assert set(acc) == set(res["variants"])
    for v, r in res["variants"].items():
        assert float(acc[v]["accuracy_mean"]) == r["accuracy"]
        assert float(acc[v]["accuracy_std"]) == r["accuracy_std"]
    md = (full_run / "report.md").read_text()
    tex = (full_run / "tables/table2.tex").read_text()
    for r in res["variants"].values():
        m = r["average"]["fpr95"]
        assert f"{m['mean']:.2f} ± {m['std']:.2f}" in md
        assert f"${m['mean']:.2f}_{{{m['std']:.2f}}}$" in tex
        assert f"{r['accuracy']:.2f} ± {r['accuracy_std']:.2f}" in md
    meta = json.loads((full_run / "meta.json").read_text())
    assert meta["code_version"] in md and "Wall time per stage" in md and "```yaml" in md


def test_rebuild_gives_identical_tables(full_run: Path, data_root: Path):
    names = ["report.md", *(f"tables/{t}" for t in TABLES)]
    before = {n: (full_run / n).read_bytes() for n in names}
    assert build_report(full_run, data_root=data_root) == full_run / "report.md"
    assert {n: (full_run / n).read_bytes() for n in names} == before


def test_run_without_resampling(two_variant_run: Path, data_root: Path):
    build_report(two_variant_run, data_root=data_root)
    md = (two_variant_run / "report.md").read_text()
    assert not (two_variant_run / "figures/resampling.png").exists()
    assert not (two_variant_run / "figures/gallery_weights.png").exists()
    with Image.open(two_variant_run / "figures/gallery_missed_ood.png") as img:
        assert img.size == _px(galleries.gallery_inches([1, 1]))
    assert "Background resampling" not in md and "no resampled variant" in md
    assert "data:image/png;base64," in (two_variant_run / "report.html").read_text()


def test_compare_runs_and_evaluate_folder(
    full_run: Path, two_variant_run: Path, eval_dir: Path, tmp_path: Path
):
    runs = [full_run, two_variant_run, eval_dir]
    path = compare_runs(runs, tmp_path / "cmp")
    assert path == tmp_path / "cmp" / "compare.md"
    with open(tmp_path / "cmp" / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["variant"]) for r in rows] == [
        (run.name, v) for run in runs for v in _results(run)["variants"]
    ]
    full = _results(full_run)["variants"]["resampled"]
    row = next(r for r in rows if r["run"] == full_run.name and r["variant"] == "resampled")
    assert float(row["auroc_mean"]) == full["average"]["auroc"]["mean"]
    assert float(row["accuracy_mean"]) == full["accuracy"]
    # one model: means alone (the ± of its Average rows is mostly the spread between sets)
    evaluated = next(r for r in rows if r["run"] == eval_dir.name)
    assert evaluated["accuracy_std"] == "" and evaluated["fpr95_std"] == ""
    assert f"{full['average']['auroc']['mean']:.2f}" in path.read_text()
    text = compare_text(runs)
    assert "resampled" in text and eval_dir.name in text and "model" in text
    assert len(compare_records([full_run, full_run])) == 2 * len(_results(full_run)["variants"])
    # the config keys that differ are listed, in the terminal and in compare.md
    assert "The runs' configs are identical." in compare_text([full_run, full_run])
    diffs = dict(config_differences([full_run, two_variant_run]))
    assert "run.variants" in diffs and "config key(s) differ" in path.read_text()
    # a run made before a config section existed: its keys count at their defaults
    older = tmp_path / "older"
    older.mkdir()
    saved = yaml.safe_load((two_variant_run / "config.yaml").read_text())
    del saved["log"]
    (older / "config.yaml").write_text(yaml.safe_dump(saved))
    assert dict(config_differences([two_variant_run, older])) == {}
    saved["run"]["seeds"] = 7
    (older / "config.yaml").write_text(yaml.safe_dump(saved))
    assert dict(config_differences([two_variant_run, older])) == {"run.seeds": [1, 7]}


def test_compare_pairs_runs_by_seed(full_run: Path, two_variant_run: Path, tmp_path: Path):
    """Runs that share seed 0's pre-trained model and ID batches: the none and full variants
    fine-tune identically, so their paired differences are exactly zero; the first run's other
    variants are not paired."""
    records = paired_records([full_run, two_variant_run])
    assert [(r["variant"], r["seeds"]) for r in records] == [("none", [0]), ("full", [0])]
    for r in records:
        for key in ("average.fpr95", "average.auroc", "validation.auroc"):
            assert r[key].mean == 0.0 and r[key].per_seed == [0.0] and r[key].ci95 is None
    reverse = paired_records([two_variant_run, full_run])
    assert {r["variant"] for r in reverse} == {"none", "full"}
    compare_runs([two_variant_run, full_run], tmp_path / "cmp")
    with open(tmp_path / "cmp" / "compare_paired.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["seeds"], float(r["average.fpr95_mean"])) for r in rows] == [
        ("none", "0", 0.0),
        ("full", "0", 0.0),
    ]
    assert "Paired by seed" in compare_text([full_run, two_variant_run])
    assert "Paired by seed" not in compare_text([full_run])
    # a run validated on other sets (written before val-glyphs: no per-set record) pairs its
    # test averages but not its validation average
    old = tmp_path / "old_run"
    shutil.copytree(two_variant_run, old)
    seed_file = old / "seed_0" / "results.json"
    d = json.loads(seed_file.read_text())
    for variant in d["variants"].values():
        variant["validation"].pop("ood")
    seed_file.write_text(json.dumps(d))
    for r in paired_records([full_run, old]):
        assert "average.fpr95" in r and "validation.fpr95" not in r
    # a run on another pool (its hold-out is other images) under the same set names: the same
    # test sets pair, validation does not
    other_pool = tmp_path / "other_pool"
    shutil.copytree(two_variant_run, other_pool)
    cfg = yaml.safe_load((other_pool / "config.yaml").read_text())
    cfg["data"]["validation"]["pool_fraction"] = 0.5
    (other_pool / "config.yaml").write_text(yaml.safe_dump(cfg))
    for r in paired_records([two_variant_run, other_pool]):
        assert "average.fpr95" in r and "validation.fpr95" not in r
    assert "Warning" not in compare_text([two_variant_run, other_pool])
    # a run tested on other OOD sets: no test column pairs, and the console says why
    other_sets = tmp_path / "other_sets"
    shutil.copytree(two_variant_run, other_sets)
    for f in (other_sets / "results.json", other_sets / "seed_0" / "results.json"):
        d = json.loads(f.read_text())
        for variant in d["variants"].values():
            variant["ood"]["renamed"] = variant["ood"].popitem()[1]
        f.write_text(json.dumps(d))
    for r in paired_records([two_variant_run, other_sets]):
        assert "average.fpr95" not in r and "validation.fpr95" in r
    # one pool file at two paths (another data root, another machine): the same data; generated
    # OOD sets of another size (--quick against a full run): other images
    moved = []
    for name, where in (("at_a", "/a"), ("at_b", "/b")):
        copy = tmp_path / name
        shutil.copytree(two_variant_run, copy)
        cfg = yaml.safe_load((copy / "config.yaml").read_text())
        cfg["data"]["background"] = f"npy:{where}/pool.npy"
        (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
        meta = json.loads((copy / "meta.json").read_text())
        identity = {"type": "file", "bytes": 10, "sha256": "ab"}
        meta["inputs"] = {"data.background": {"path": f"{where}/pool.npy", "identity": identity}}
        (copy / "meta.json").write_text(json.dumps(meta))
        moved.append(copy)
    for r in paired_records(moved):
        assert "average.fpr95" in r and "validation.fpr95" in r
    assert "Warning" not in compare_text(moved)
    cfg = yaml.safe_load((moved[1] / "config.yaml").read_text())
    cfg["data"]["embedded"]["ood_size"] += 1
    (moved[1] / "config.yaml").write_text(yaml.safe_dump(cfg))
    for r in paired_records(moved):
        assert "average.fpr95" not in r
    assert "(other images)" in compare_text(moved)
    assert "Warning: the runs were tested on different OOD sets" in compare_text(
        [two_variant_run, other_sets]
    )


def test_compare_prints_without_out(full_run: Path, two_variant_run: Path, capsys):
    assert main(["compare", str(full_run), str(two_variant_run)]) == 0
    printed = capsys.readouterr().out
    assert "resampled" in printed and "run.variants" in printed and "written" not in printed
    # a one-seed run shows means alone (no "± 0.00" spread); an evaluate folder's ± stays
    one_seed = [r for r in compare_records([two_variant_run]) if r["seeds"] == 1]
    assert one_seed and all(r["fpr95_std"] == "" for r in one_seed)
    assert "± 0.00" not in compare_table(one_seed).rows[0][4]


def test_evaluate_folder_report(eval_dir: Path):
    """Every score of --scores in report.md, report.html and openood.csv; the header names the
    scores and the checkpoint, and says what ± is over (the protocol's subsamples)."""
    build_report(eval_dir)
    res = _results(eval_dir)
    md = (eval_dir / "report.md").read_text()
    page = (eval_dir / "report.html").read_text()
    assert "not a `run` folder" in md and (eval_dir / "tables/table3.csv").is_file()
    assert "| OOD set | msp | energy |" in md and "<th>msp</th><th>energy</th>" in page
    assert "OOD scores **msp**, **energy**" in md and "scores an image by its **MSP**" not in md
    assert res["checkpoint"] in md and "pool of ?" not in md and "over seeds" not in md
    assert "± is the std over the OOD subsamples" in md
    model = res["variants"]["model"]
    for score in ("msp", "energy"):
        fpr = model["scores"][score]["average"]["fpr95"]
        assert f"{fpr['mean']:.2f} ± {fpr['std']:.2f}" in md
    with open(eval_dir / "tables/openood.csv", newline="") as f:
        rows = {(r["score"], r["dataset"]): r for r in csv.DictReader(f)}
    for score in ("msp", "energy"):
        for s, metrics in model["scores"][score]["ood"].items():
            assert float(rows[(score, s)]["AUROC"]) == metrics["auroc"]["mean"]
    # Table 3 shows what results.json records, never a made-up 0
    items = model.get("subset_size")
    assert f"| background items | {'not recorded' if items is None else f'{items:.0f}'} |" in md


def test_evaluate_results_record_the_checkpoints_background(
    full_run: Path, eval_dir: Path, data_root: Path, tmp_path: Path
):
    """What `evaluate` records (evaluation_results): the background items the checkpoint was
    fine-tuned on, from the record its run wrote, and the pool, which the header states."""
    from bgresample.config import load_config
    from bgresample.engine.benchmark import load_benchmark
    from bgresample.engine.evaluate import background_items, evaluation_results
    from bgresample.reports.build import read_results
    from bgresample.runfolder import write_json

    seed = _results(full_run / "seed_0")["variants"]
    assert (
        background_items(full_run / "seed_0/resampled.safetensors")
        == seed["resampled"]["subset_size"]
    )
    assert background_items(full_run / "seed_0/none.safetensors") == 0
    assert background_items(full_run / "pretrain/pretrain.safetensors") == 0
    lone = tmp_path / "lone.safetensors"  # a fine-tuned checkpoint moved away from its record
    shutil.copy(full_run / "seed_0/random.safetensors", lone)
    assert background_items(lone) is None
    stage = tmp_path / "finetune.safetensors"  # as the `finetune` stage writes it
    shutil.copy(full_run / "seed_0/random.safetensors", stage)
    record = {"background": "random", "steps": 3, "selection": {"working_set": 57}}
    (tmp_path / "finetune.json").write_text(json.dumps(record))
    assert background_items(stage) == 57
    (tmp_path / "finetune.json").write_text(json.dumps({"background": "none", "steps": 3}))
    assert background_items(stage) == 0

    folder = tmp_path / "ev"
    shutil.copytree(eval_dir, folder)
    cfg = load_config(folder / "config.yaml")
    cfg.data.root = str(data_root)
    bench = load_benchmark(cfg)
    ckpt = full_run / "seed_0/resampled.safetensors"
    before = read_results(eval_dir)
    results = evaluation_results(
        before.variants["model"], "model", before.scores, cfg.evaluate, bench, ckpt
    )
    assert results.pool_size == len(bench.pool) and results.ood_sets == list(bench.ood)
    write_json(folder / "results.json", results.to_json())
    build_report(folder)
    md = (folder / "report.md").read_text()
    assert f"background pool of {len(bench.pool):,} items" in md
    assert f"| background items | {seed['resampled']['subset_size']:.0f} |" in md
    with open(folder / "tables/table3.csv", newline="") as f:
        assert float(next(csv.DictReader(f))["subset_size"]) == seed["resampled"]["subset_size"]


def test_headline_and_what_the_spread_is_over(full_run: Path, two_variant_run: Path):
    """The headline is the run's paired difference of average FPR95 (2 seeds); a one-seed run
    without a pair lists each variant's average and shows no ± in Table 2."""
    res = _results(full_run)
    md = (full_run / "report.md").read_text()
    d = res["paired_differences"]["resampled_minus_random"]["average"]["fpr95"]
    below = sum(x < 0 for x in d["per_seed"])
    fa, fb = (res["variants"][v]["average"]["fpr95"]["mean"] for v in ("resampled", "random"))
    first = md.split("\n\n")[2]  # title, --quick banner, headline
    assert first.startswith(
        f"> **Resampled (10%): average FPR95 {fa:.2f} vs Random (10%) {fb:.2f}**"
    )
    assert f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" in first
    assert f"lower in {below}/2 seeds" in first
    assert "mean ± std over 2 seeds" in md and "OOD score **msp**" in md
    assert "### FPR95 ↓ (%)" in md and "### AUROC ↑ (%)" in md and "### AUPR ↑ (%)" in md
    assert "one outline per family, overlaid" in md and "stacked" not in md
    html = (full_run / "report.html").read_text()
    assert '<p class="headline"><strong>Resampled (10%)' in html

    one = _results(two_variant_run)
    md = (two_variant_run / "report.md").read_text()
    avg = {v: r["average"]["fpr95"]["mean"] for v, r in one["variants"].items()}
    assert f"average FPR95 over 8 OOD sets: none {avg['none']:.2f}, full {avg['full']:.2f}**" in md
    assert "values of one seed (no spread to show)" in md
    table2 = md.split("### FPR95 ↓ (%)")[1].split("###")[0]
    assert "±" not in table2 and "| OOD set | none | full |" in table2


def test_pr_curve_weighted_to_the_protocols_ood_share():
    """The figures' PR curve weights the pooled OOD items down to one subsample's share: its
    AUPR is then that of the tables (the mean over the protocol's subsamples), where the
    unweighted pool, with five subsamples' worth of OOD items, reads far higher."""
    from sklearn.metrics import average_precision_score

    from bgresample.metrics import evaluate_protocol, protocol_indices

    rng = np.random.default_rng(0)
    id_s, ood_all = rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 2000)
    table = evaluate_protocol(id_s, {"x": ood_all}, ratio=0.2, repeats=5, seed=0)
    used = np.unique(np.concatenate(protocol_indices(500, {"x": 2000}, 0.2, 5, 0)["x"]))
    ood_s = ood_all[used]
    w = figures.ood_weight(len(ood_s), 100)
    assert w == 100 / len(ood_s) and figures.ood_weight(60, 100) == 1.0
    assert figures.ood_weight(60, None) == 1.0
    labels = np.r_[np.zeros(500), np.ones(len(ood_s))]
    stat = -np.r_[id_s, ood_s]
    weighted = 100 * average_precision_score(
        labels, stat, sample_weight=np.r_[np.ones(500), np.full(len(ood_s), w)]
    )
    pooled = 100 * average_precision_score(labels, stat)
    aupr = table["ood"]["x"]["aupr"]["mean"]
    assert abs(weighted - aupr) < 1.5 and pooled - aupr > 10


def test_every_registered_score_has_a_figure_label():
    """Each built-in score is named in the figures' axes (not its bare registry key)."""
    from bgresample.scores import SCORES

    builtin = {n for n, spec in SCORES.items() if spec.fn.__module__.startswith("bgresample.")}
    assert {"msp", "energy", "hopfield"} <= builtin
    missing = sorted(builtin - set(figures.SCORE_NAMES))
    assert not missing, f"add {missing} to reports.figures.SCORE_NAMES"


def test_views_without_provenance(tmp_path: Path):
    """No families: single-colour weight histogram, composition panel marked, index captions."""
    rng = np.random.default_rng(0)
    n = 50
    pool = ImageArray(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8))
    w = rng.lognormal(size=n)
    steps = list(range(5))
    hist = {
        "step": steps,
        "w_min": [0.5] * 5,
        "w_median": [1.0] * 5,
        "w_max": [2.0] * 5,
        "ess": [float(n)] * 5,
        "traced_items": [0, 7],
        "traced_weights": [[1.0, 1.0 + 0.1 * k] for k in steps],
    }
    png = figures.resampling_figure(hist, w, None, None, n, 0, "t", tmp_path / "r")
    with Image.open(png) as img:
        assert img.size == _px(figures.RESAMPLING_INCHES)
    png = galleries.weight_gallery(pool, w, 0, "t", tmp_path / "g.png")
    with Image.open(png) as img:
        assert img.size == _px(galleries.gallery_inches([galleries.WEIGHT_ROWS] * 2))
    noise = ImageArray(torch.randn(4, 3, 32, 32), name="gaussian", normalized=True)
    scores = {"none": {"id": np.ones(3), "gaussian": np.array([0.9, 0.2]), "gaussian__idx": [3, 1]}}
    assert galleries.missed_ood(scores["none"], ["gaussian"]) == [
        ("gaussian", 3, 0.9),
        ("gaussian", 1, 0.2),
    ]
    assert galleries.missed_ood_gallery({"gaussian": noise}, scores, 0, "t", tmp_path / "m.png")
    assert galleries.missed_ood_gallery({"faces": noise}, scores, 0, "t", tmp_path / "x") is None


def test_weight_gallery_says_how_many_items_tie():
    from bgresample.reports.galleries import _ties

    w = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    assert _ties(w, np.array([0, 1])) == "; 4 items share w=1, 2 of them shown"
    assert _ties(w, np.array([5, 4])) == ""  # no tie beyond the block


def test_histogram_bins_cover_scores_that_are_not_probabilities():
    probs = [np.array([0.12, 0.9]), np.array([0.5, 1.0])]
    np.testing.assert_allclose(figures.hist_bins(probs)[[0, -1]], [0.1, 1.0])
    energy = [np.array([2.5, 11.0]), np.array([-3.0, 4.0])]
    bins = figures.hist_bins(energy)
    assert len(bins) == 41 and bins[0] == -3.0 and bins[-1] == 11.0
    assert len(figures.hist_bins([np.array([5.0, 5.0])])) == 41  # one value: a non-empty range


def test_compare_refuses_a_broken_per_seed_file(full_run: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(full_run, copy)
    (copy / "seed_0" / "results.json").write_text("{not json")
    with pytest.raises(UserError, match=r"seed_0/results.json is not a per-seed results file"):
        paired_records([full_run, copy])


def test_the_quick_banner_counts_the_real_seeds():
    from bgresample.reports.tables import quick_banner

    assert "4 fine-tuning epochs, 1 seed)" in quick_banner(1)
    assert "4 fine-tuning epochs, 3 seeds)" in quick_banner(3)


def test_report_says_what_was_passed_instead_of_a_finished_run(full_run: Path, tmp_path: Path):
    cases = [
        (tmp_path / "missing", "does not exist"),
        (full_run / "report.md", f"is a file, not a run folder.*perhaps {full_run}"),
        (full_run / "seed_0", f"one seed's folder of the run {full_run}; pass {full_run}"),
    ]
    unfinished = tmp_path / "unfinished"
    shutil.copytree(full_run, unfinished)
    (unfinished / "results.json").unlink()
    meta = json.loads((unfinished / "meta.json").read_text())
    meta["argv"] = ["/bin/bgresample", "run", "--out", "u", "--overwrite"]  # as a shell ran it
    (unfinished / "meta.json").write_text(json.dumps(meta))
    again = "bgresample run --out u --resume"  # --overwrite would start it again
    cases.append((unfinished, f"did not finish; finish it with `{re.escape(again)}`"))
    evaluated = tmp_path / "evaluated"  # evaluate does not resume: it runs again
    evaluated.mkdir()
    argv = ["/bin/bgresample", "evaluate", "--checkpoint", "my model.safetensors", "--out", "e"]
    meta = {"command": "evaluate", "argv": argv, "code_version": "v"}  # as bgresample writes
    (evaluated / "meta.json").write_text(json.dumps(meta))
    again = "bgresample evaluate --checkpoint 'my model.safetensors' --out e --overwrite"
    cases.append((evaluated, f"run it again with `{re.escape(again)}`"))
    stage = tmp_path / "stage"
    stage.mkdir()
    meta = {"command": "pretrain", "argv": [], "code_version": "v"}
    (stage / "meta.json").write_text(json.dumps(meta))
    cases.append((stage, "written by `bgresample pretrain`, which writes no results"))
    for folder, match in cases:
        with pytest.raises(UserError, match=match):
            build_report(folder)
