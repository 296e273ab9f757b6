"""Rebuild every report file of a finished run folder, without re-training (``bgresample report``).

Writes ``figures/`` (Figure 1 per OOD set, resampling views, galleries), ``tables/`` (Tables 2
and 3 as CSV and LaTeX), ``report.md`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from bgresample.config import Config, load_config
from bgresample.engine.benchmark import Benchmark, load_benchmark
from bgresample.engine.experiment import load_resampler
from bgresample.errors import UserError, shorten
from bgresample.files import atomic_write_text
from bgresample.reports import tables
from bgresample.reports.document import to_html, to_markdown
from bgresample.reports.figures import (
    benchmark_name,
    benchmark_title,
    load_scores,
    resampling_figure,
    score_figure,
    score_names,
)
from bgresample.reports.galleries import missed_ood_gallery, weight_gallery
from bgresample.reports.markdown import Artifacts, blocks
from bgresample.reports.selectors import pareto_figure, report_section
from bgresample.results import RunResults
from bgresample.runfolder import RESUMABLE_COMMANDS, read_run_meta

log = logging.getLogger("bgresample")


def _no_results(run_dir: Path) -> str:
    """Why ``run_dir`` has no results.json, and what to pass or run instead."""
    want = "pass a folder written by `bgresample run` or `bgresample evaluate`"
    if not run_dir.exists():
        return f"{run_dir} does not exist; {want}"
    if not run_dir.is_dir():
        return f"{run_dir} is a file, not a run folder; {want} (here, perhaps {run_dir.parent})"
    meta = read_run_meta(run_dir) or {}
    command = str(meta.get("command") or "")
    argv = [str(a) for a in meta["argv"]] if isinstance(meta.get("argv"), list) else []
    if command and command not in ("run", "compare-selectors", "evaluate"):
        return f"{run_dir} was written by `bgresample {command}`, which writes no results; {want}"
    if command:  # argv is the command line where it names the command (not a caller's)
        words = argv[1:] if argv[1:2] == [command] else [command, "...", "--out", str(run_dir)]
        if command in RESUMABLE_COMMANDS:
            words = [w for w in words if w != "--overwrite"]
            words += [] if "--resume" in words else ["--resume"]
            how = "finish it with"
        else:
            words += [] if "--overwrite" in words else ["--overwrite"]
            how = "run it again with"
        again = shlex.join(["bgresample", *words])
        return f"{run_dir} has no results.json: its run did not finish; {how} `{again}`"
    return f"{run_dir} has no results.json; {want} (a run that did not finish has none)"


def read_results(run_dir: Path) -> RunResults:
    """``results.json`` of a run folder, or a :class:`UserError` that says what to pass."""
    res_path = run_dir / "results.json"
    if re.fullmatch(r"seed_\d+", run_dir.name) and (run_dir.parent / "meta.json").is_file():
        raise UserError(
            f"{run_dir} is one seed's folder of the run {run_dir.parent}; pass {run_dir.parent}"
        )
    if not res_path.is_file():
        raise UserError(_no_results(run_dir))
    how = "re-run the command that wrote it (or pass a folder written by `bgresample run`)"
    try:
        data = json.loads(res_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{res_path} is not JSON ({shorten(str(e))}); {how}") from None
    variants = data.get("variants") if isinstance(data, dict) else None
    if (
        not isinstance(variants, dict)
        or not variants
        or not all(_is_variant(r) for r in variants.values())
    ):
        what = "an object without variants" if isinstance(data, dict) else "no JSON object"
        raise UserError(
            f"{res_path} holds {what}, expected the results object bgresample writes "
            f'({{"variants": {{NAME: metrics, ...}}, ...}}); {how}'
        )
    try:
        return RunResults.from_json(data)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise UserError(
            f"{res_path} is not a results file bgresample wrote ({type(e).__name__}: "
            f"{shorten(str(e))}); {how}"
        ) from None


def _is_variant(r: Any) -> bool:
    return isinstance(r, dict) and isinstance(r.get("ood"), dict) and "accuracy" in r


def read_run(run_dir: Path) -> tuple[RunResults, Config, dict[str, Any]]:
    """``results.json``, ``config.yaml`` and ``meta.json`` (empty where absent) of a run folder."""
    results = read_results(run_dir)
    cfg_path, meta_path = run_dir / "config.yaml", run_dir / "meta.json"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} has no config.yaml; is it a bgresample run folder?")
    cfg = load_config(cfg_path)
    try:
        meta = json.loads(meta_path.read_bytes()) if meta_path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict):
        raise UserError(
            f"{meta_path} is not the JSON object bgresample writes; re-run the command that "
            "wrote the folder"
        )
    return results, cfg, meta


def _load_benchmark(cfg: Config, art: Artifacts) -> Benchmark | None:
    try:
        return load_benchmark(cfg)
    except (UserError, OSError, ValueError) as exc:
        art.notes.append(f"galleries: could not load the data from the config ({exc})")
        return None


def _write_tables(run: Path, results: RunResults) -> None:
    for name, text in (
        ("table2.csv", tables.table2_csv(results)),
        ("table2.tex", tables.table2_latex(results)),
        ("openood.csv", tables.openood_csv(results)),
        ("table3.csv", tables.table3_csv(results)),
        ("table3.tex", tables.table3_latex(results)),
    ):
        atomic_write_text(run / "tables" / name, text)
    if tables.shifted(results) is not None:
        atomic_write_text(run / "tables" / "shifted.csv", tables.shifted_csv(results))


def build_report(run_dir: str | Path, data_root: str | Path | None = None) -> Path:
    """Rebuild figures, galleries, tables, ``report.md`` and ``report.html`` of ``run_dir``.

    ``data_root`` overrides the config's data root (the galleries reload the images from it).
    Parts whose inputs the run lacks (a variant, resampling, provenance) are left out and
    listed in the report. Returns the path of ``report.md``.
    """
    run = Path(run_dir)
    results, cfg, meta = read_run(run)
    if data_root is not None:
        cfg.data.root = str(data_root)
    art = Artifacts(tables=True, score=tables.scores_of(results)[0])
    if results.budget is not None:  # the selectors' section (run and compare-selectors)
        pareto = pareto_figure(results, run / "figures" / "pareto")
        art.extra = report_section(results, pareto.relative_to(run))
    _write_tables(run, results)
    bench_name = benchmark_title(benchmark_name(results, cfg))
    seeds = results.seeds or []
    if not seeds:
        art.notes.append("figures and galleries: no per-seed folders (not a `run` folder)")
        return _write(run, results, cfg, meta, art)
    seed = art.seed = int(seeds[0])
    seed_dir = run / f"seed_{seed}"
    figs = run / "figures"

    scores = load_scores(run, seed, list(results.variants))
    missing = [v for v in results.variants if v not in scores]
    if missing:
        art.notes.append(f"score figures: no scores of {', '.join(missing)} for seed {seed}")
    ood_sets = results.ood_sets or list(next(iter(results.variants.values())).ood)
    short = score_names(art.score)[0]
    subsample = _subsample(results, cfg, scores)
    for s in ood_sets:
        if any(s in sc for sc in scores.values()):
            title = f"{bench_name}: ID test vs OOD set '{s}' ({short} of seed {seed})"
            legend = _seed_metrics(results, seed, s)
            stem = figs / f"scores_{s}"
            fig = score_figure(scores, s, title, stem, art.score, legend, subsample)
            art.scores[s] = _rel(run, fig)

    w_path, h_path = seed_dir / "weights.safetensors", seed_dir / "resample_history.json"
    weights = load_resampler(w_path).weights().double().numpy() if w_path.is_file() else None
    history = json.loads(h_path.read_text()) if h_path.is_file() else None
    bench = _load_benchmark(cfg, art)
    if bench is not None and weights is not None and len(bench.pool) != len(weights):
        art.notes.append(
            f"galleries: the data has {len(bench.pool)} pool items but the weights "
            f"{len(weights)}; pass the run's --data-root"
        )
        bench = None
    pool_size = int(results.pool_size or (len(weights) if weights is not None else 1))
    if weights is not None or history is not None or results.composition:
        family = bench.pool.family if bench is not None else None
        title = f"{bench_name}: adversarial background resampling"
        fig = resampling_figure(
            history,
            weights,
            family,
            results.composition,
            pool_size,
            seed,
            title,
            figs / "resampling",
        )
        art.resampling = _rel(run, fig)
    else:
        art.notes.append("resampling views: the run has no resampled variant")
    if bench is not None:
        if weights is not None:
            title = f"{bench_name}: pool images by learned weight"
            art.weight_gallery = _rel(
                run, weight_gallery(bench.pool, weights, seed, title, figs / "gallery_weights.png")
            )
        missed = missed_ood_gallery(
            bench.ood,
            scores,
            seed,
            f"{bench_name}: OOD test images each variant misses most",
            figs / "gallery_missed_ood.png",
            art.score,
        )
        art.missed_gallery = _rel(run, missed) if missed else None
    return _write(run, results, cfg, meta, art)


def _subsample(
    results: RunResults, cfg: Config, scores: dict[str, dict[str, np.ndarray]]
) -> int | None:
    """OOD items per protocol subsample (round(ratio x |ID test|)); None for whole sets."""
    if results.protocol == "full" or not scores:
        return None
    n_id = len(next(iter(scores.values()))["id"])
    return round(cfg.evaluate.ratio * n_id)


def _seed_metrics(results: RunResults, seed: int, ood_set: str) -> dict[str, dict[str, float]]:
    """Each variant's FPR95 / AUROC / AUPR on ``ood_set`` for ``seed`` (its ``per_seed``); none
    where the run measured them with ID positive, unlike the figures' OOD-positive curves."""
    if (results.convention or "ood-positive") != "ood-positive":
        return {}
    return {
        v: p.ood[ood_set]
        for v, r in results.variants.items()
        for p in r.per_seed or []
        if p.seed == seed and ood_set in p.ood
    }


def _rel(run: Path, path: Path) -> str:
    return path.relative_to(run).as_posix()


def _write(
    run: Path,
    results: RunResults,
    cfg: Config,
    meta: dict[str, Any],
    art: Artifacts,
) -> Path:
    """``report.md`` and a self-contained ``report.html`` of the same blocks."""
    report = blocks(results, cfg, meta, art)
    md = run / "report.md"
    atomic_write_text(md, to_markdown(report))
    title = f"bgresample report: {run.resolve().name}"
    atomic_write_text(run / "report.html", to_html(report, run, title))
    log.info("report: %s and %s", md, run / "report.html")
    return md
