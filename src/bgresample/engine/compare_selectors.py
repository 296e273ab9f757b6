"""``bgresample compare-selectors``: every way of choosing background data side by side, on the
same pre-trained model, the same budget, the same fine-tuning and the same evaluation.

Per seed: Algorithm 1 once (if a weight-based selector is asked for), then for each selector
fine-tune the pre-trained model with the background it chooses (:mod:`bgresample.selectors`;
``none`` = no background) and evaluate it. ``DIR/results.json`` has one variant per selector in
the shape of ``bgresample run``'s (so ``report`` and ``compare`` read it), plus the selection
costs; ``DIR/report.md`` adds a selector section and ``DIR/figures/pareto.png`` plots the
average FPR95 against the selection cost. Fine-tuned checkpoints are kept in
``DIR/seed_<seed>/<selector>.safetensors``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bgresample import dist
from bgresample.data.benchmark import Benchmark
from bgresample.engine.common import Accel, predict_logits
from bgresample.engine.evaluate import evaluate
from bgresample.engine.experiment import (
    aggregate,
    ensure_pretrained,
    learned_weights,
    load_pretrained,
    save_variant,
    saved_variant,
)
from bgresample.engine.finetune import finetune
from bgresample.errors import UserError
from bgresample.metrics import accuracy
from bgresample.reports import tables
from bgresample.reports.build import build_report
from bgresample.reports.selectors import NONE, summary_table
from bgresample.resampling import composition
from bgresample.runfolder import write_json
from bgresample.selectors import (
    SELECTORS,
    WEIGHT_SELECTORS,
    SelectionContext,
    Selector,
    build_selector,
)

log = logging.getLogger("bgresample")

#: ``selectors.score: auto``: the OOD score that goes with a fine-tuning loss (default msp).
AUTO_SCORES = {"extra_class": "extra_class", "energy": "energy"}
COST_KEYS = ("setup", "per_epoch", "total", "id", "distinct_items", "working_set")


def prepare(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """Apply ``--selectors`` to the config and check the names; without ``--seeds``, run
    min(``run.seeds``, ``selectors.max_seeds``) seeds; default ``--out``."""
    names = args.selectors or cfg["selectors"]["names"]
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    cfg["selectors"]["names"] = names = list(names)
    bad = [n for n in names if n != NONE and n not in SELECTORS]
    if bad:
        valid = ", ".join([NONE, *SELECTORS])
        raise UserError(f"unknown selector(s) {', '.join(bad)}; valid: {valid}")
    if not names or len(set(names)) != len(names):
        raise UserError(f"give each selector once (--selectors a,b,c), got {names}")
    if args.seeds is None:
        seeds = min(int(cfg["run"]["seeds"]), int(cfg["selectors"]["max_seeds"]))
        cfg["run"]["seeds"] = seeds
    if args.out is None:
        args.out = "runs/selectors-quick" if args.quick else "runs/selectors"


def score_name(cfg: dict[str, Any]) -> str:
    """``selectors.score``; ``auto`` = the score that matches ``finetune.loss``: extra_class,
    energy, else msp."""
    name = cfg["selectors"]["score"]
    if name != "auto":
        return name
    return AUTO_SCORES.get(cfg["finetune"]["loss"], "msp")


def finetune_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """The ``finetune`` section and the energy margins; with ``finetune.loss=energy``, alpha is
    ``selectors.energy.alpha`` (Liu et al.'s lambda)."""
    energy = dict(cfg["selectors"]["energy"])
    alpha = energy.pop("alpha")
    if cfg["finetune"]["loss"] != "energy":
        return cfg["finetune"], energy
    return {**cfg["finetune"], "alpha": alpha}, energy


def compare_selectors(
    cfg: dict[str, Any],
    bench: Benchmark,
    out: Path,
    accel: Accel,
    *,
    quiet: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run every selector of ``selectors.names`` over ``run.seeds`` seeds; write results,
    checkpoints, the report and the Pareto plot into ``out``. Returns the results."""
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    pre_path = ensure_pretrained(cfg, bench, out, accel, quiet, resume)
    timing["pretrain"] = time.perf_counter() - t_start
    per_seed = []
    for k in range(int(cfg["run"]["seeds"])):
        seed = int(cfg["seed"]) + k
        log.info("== seed %d (%d of %d)", seed, k + 1, cfg["run"]["seeds"])
        res = _seed(cfg, bench, pre_path, seed, out / f"seed_{seed}", accel, quiet, resume)
        for key, val in res.pop("timing_s").items():
            timing[key] = timing.get(key, 0.0) + val
        per_seed.append(res)
    results = aggregate(per_seed, cfg["evaluate"]["convention"])
    names = list(results["variants"])
    results["selection"] = {
        v: {
            key: float(np.mean([s["variants"][v]["selection"][key] for s in per_seed]))
            for key in COST_KEYS
        }
        | {"refresh": per_seed[0]["variants"][v]["selection"]["refresh"]}
        for v in names
    }
    ft, _ = finetune_config(cfg)
    first = per_seed[0]["variants"][names[0]]
    results["budget"] = {
        "gamma": float(cfg["select"]["gamma"]),
        "k": first["selection"]["budget"],
        "background_epoch_steps": first["selection"]["background_epoch_steps"],
        "finetune_epochs": int(ft["epochs"]),
        "background_draws": first["finetune"]["steps"] * int(ft["background_batch_size"]),
        "loss": ft["loss"],
        "alpha": float(ft["alpha"]),
        "score": score_name(cfg),
    }
    timing["total"] = time.perf_counter() - t_start
    results["timing_s"] = timing
    results["benchmark"] = bench.name
    results["pool_size"] = len(bench.pool)
    results["ood_sets"] = list(bench.ood)
    if dist.info().is_main:
        report = write_outputs(results, cfg, out)
        print(summary_table(results).text())
        print(tables.CONVENTION_NOTE[results["convention"]])
        log.info("report: %s", report)
    return results


def write_outputs(results: dict[str, Any], cfg: dict[str, Any], out: Path) -> Path:
    """``results.json`` and the report (:func:`build_report`: the standard report with the
    selector section, or the section alone for a score that is not a probability). Returns the
    report's path."""
    write_json(out / "results.json", results)
    return build_report(out, cfg["data"]["root"])


def _seed(
    cfg: dict[str, Any],
    bench: Benchmark,
    pre_path: Path,
    seed: int,
    out: Path,
    accel: Accel,
    quiet: bool,
    resume: bool,
) -> dict[str, Any]:
    """One seed: fine-tune and evaluate every selector; returns ``run_seed``'s shape."""
    if dist.info().is_main:
        out.mkdir(parents=True, exist_ok=True)
    names = list(cfg["selectors"]["names"])
    timing: dict[str, float] = {}
    weights, weights_cost = None, 0
    if any(n in WEIGHT_SELECTORS for n in names):
        t0 = time.perf_counter()
        learned, hist, _ = learned_weights(cfg, bench, pre_path, seed, out, accel, quiet, resume)
        weights = learned.weights().detach().cpu()
        weights_cost = int(hist["steps"]) * int(cfg["resample"]["batch_size"])
        timing["resample"] = time.perf_counter() - t0
    ft, margins = finetune_config(cfg)
    score = score_name(cfg)
    options = {**cfg["selectors"], "resampled": {"method": cfg["select"]["method"]}}
    results: dict[str, Any] = {}
    for name in names:
        saved = saved_variant(out, name, resume)
        if saved is not None:
            results[name] = saved
            continue
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = load_pretrained(cfg, bench, pre_path)
        ctx = SelectionContext(
            pool=bench.pool,
            train=bench.train,
            accel=accel,
            seed=seed,
            gamma=float(cfg["select"]["gamma"]),
            batch_size=int(ft["background_batch_size"]),
            score=score,
            score_batch_size=int(cfg["evaluate"]["batch_size"]),
            weights=weights,
            weights_cost=weights_cost,
        )
        selector = None if name == NONE else build_selector(name, ctx, options)
        info = finetune(
            model,
            bench.train,
            bench.pool,
            None,
            ft,
            accel=accel,
            seed=seed,
            flip=bench.flip,
            state_path=out / f"{name}.state.safetensors",
            resume=resume,
            desc=f"finetune[{name}]",
            quiet=quiet,
            selector=selector,
            loss_options=margins,
        )
        timing["finetune"] = timing.get("finetune", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        res, scores = evaluate(
            model, bench.test, bench.ood, cfg["evaluate"], accel=accel, seed=seed, scores=score
        )
        if ft["loss"] == "extra_class":
            logits = predict_logits(model, bench.test, accel, int(cfg["evaluate"]["batch_size"]))
            res["accuracy"] = accuracy(
                logits[:, : bench.num_classes].numpy(), bench.test.targets.cpu().numpy()
            )
        timing["evaluate"] = timing.get("evaluate", 0.0) + time.perf_counter() - t0
        res["selection"] = _cost(info.pop("selection", None), ctx, int(ft["epochs"]))
        res["subset_size"] = res["selection"]["working_set"]
        res["finetune"] = info
        if selector is not None and bench.pool.family is not None:
            res["composition"] = composition(_used(selector), bench.pool.family)
        results[name] = res
        save_variant(out, name, seed, model, res, scores)
        log.info(
            "seed %d %-11s acc %.2f  avg FPR95 %.2f  AUROC %.2f  AUPR %.2f  pool fwd %d",
            seed,
            name,
            res["accuracy"],
            res["average"]["fpr95"]["mean"],
            res["average"]["auroc"]["mean"],
            res["average"]["aupr"]["mean"],
            res["selection"]["total"],
        )
    seed_result: dict[str, Any] = {"seed": seed, "variants": results, "timing_s": timing}
    comps = {v: r["composition"] for v, r in results.items() if "composition" in r}
    if comps:
        seed_result["composition"] = comps
    return seed_result


def _used(selector: Selector) -> torch.Tensor:
    return torch.nonzero(selector.used).flatten()


def _cost(summary: dict[str, Any] | None, ctx: SelectionContext, epochs: int) -> dict[str, Any]:
    """A selector's budget and costs: pool forward passes before fine-tuning (``setup``), per
    fine-tuning epoch and in total, ID forward passes (``id``), and distinct items trained on."""
    if summary is None:
        summary = {
            "refresh": NONE,
            "working_set": 0,
            "forwards": {"setup": 0, "during": 0, "id": 0},
            "distinct_items": 0,
        }
    fw = summary["forwards"]
    return {
        "refresh": summary["refresh"],
        "budget": ctx.budget,
        "background_epoch_steps": ctx.epoch_steps,
        "working_set": summary["working_set"],
        "setup": fw["setup"],
        "per_epoch": fw["during"] / max(epochs, 1),
        "total": fw["setup"] + fw["during"],
        "id": fw["id"],
        "distinct_items": summary["distinct_items"],
    }
