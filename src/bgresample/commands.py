"""The stage commands behind the CLI; each writes into its run folder."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import torch

from bgresample import config as C
from bgresample.checkpoint import load_model_state, save_model
from bgresample.data.benchmark import Benchmark, load_benchmark
from bgresample.engine.common import generator, resolve_device
from bgresample.engine.evaluate import evaluate
from bgresample.engine.experiment import aggregate, build_model, ensure_pretrained, run_seed
from bgresample.engine.finetune import finetune
from bgresample.engine.pretrain import pretrain
from bgresample.engine.resample import resample
from bgresample.errors import UserError
from bgresample.reports import tables
from bgresample.reports.markdown import write_report
from bgresample.resampling import (
    BackgroundWeights,
    composition,
    read_manifest,
    select,
    write_manifest,
)
from bgresample.runfolder import prepare_run_folder, setup_logging, write_json

log = logging.getLogger("bgresample")


def _start(args: argparse.Namespace, cfg: dict[str, Any]) -> tuple[Path, torch.device]:
    out = prepare_run_folder(
        args.out, cfg, args.command, overwrite=args.overwrite, resume=getattr(args, "resume", False)
    )
    setup_logging(out, args.quiet)
    torch.manual_seed(int(cfg["seed"]))
    return out, resolve_device(cfg["device"])


def _load_checkpoint(cfg: dict[str, Any], bench: Benchmark, path: str) -> torch.nn.Module:
    model = build_model(cfg, bench.num_classes)
    load_model_state(path, model)
    return model


def cmd_pretrain(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, device = _start(args, cfg)
    bench = load_benchmark(cfg)
    model = build_model(cfg, bench.num_classes)
    res = pretrain(
        model,
        bench.train,
        cfg["pretrain"],
        device=device,
        seed=int(cfg["seed"]),
        flip=bench.flip,
        channels_last=bool(cfg["model"]["channels_last"]),
        out=out,
        quiet=args.quiet,
    )
    write_json(out / "pretrain_history.json", res["history"])
    log.info("wrote %s", out / "pretrain.safetensors")


def cmd_evaluate(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    if not Path(args.checkpoint).is_file():
        raise UserError(
            f"checkpoint {args.checkpoint} not found; pass the .safetensors file that "
            "`bgresample pretrain` or `finetune` wrote (e.g. RUN/pretrain.safetensors)"
        )
    bench = load_benchmark(cfg)
    out, device = _start(args, cfg)
    model = _load_checkpoint(cfg, bench, args.checkpoint)
    res, _ = evaluate(
        model,
        bench.test,
        bench.ood,
        cfg["evaluate"],
        device=device,
        seed=int(cfg["seed"]),
        channels_last=bool(cfg["model"]["channels_last"]),
    )
    results = {
        "variants": {args.variant: res},
        "convention": res["convention"],
        "checkpoint": str(args.checkpoint),
        "protocol": {k: cfg["evaluate"][k] for k in ("ratio", "repeats")},
    }
    write_json(out / "results.json", results)
    print(tables.table2_text(results))
    print(tables.CONVENTION_NOTE[res["convention"]])


def cmd_resample(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    bench = load_benchmark(cfg)
    out, device = _start(args, cfg)
    model = _load_checkpoint(cfg, bench, args.checkpoint)
    weights, hist = resample(
        model,
        bench.train,
        bench.pool,
        cfg["resample"],
        device=device,
        seed=int(cfg["seed"]),
        flip=bench.flip,
        channels_last=bool(cfg["model"]["channels_last"]),
        quiet=args.quiet,
    )
    hist.pop("draws")
    weights.save(out / "weights.safetensors")
    write_json(out / "resample_history.json", hist)
    log.info("wrote %s", out / "weights.safetensors")


def cmd_select(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    bench = load_benchmark(cfg)
    out, _ = _start(args, cfg)
    method, gamma = cfg["select"]["method"], float(cfg["select"]["gamma"])
    w = None
    if method not in ("random", "full"):
        if not args.weights:
            raise UserError(
                f"--method {method} needs --weights (weights.safetensors from `resample`)"
            )
        w = BackgroundWeights.load(args.weights).weights().detach()
        if len(w) != len(bench.pool):
            raise UserError(
                f"{args.weights} holds {len(w)} weights but the pool has {len(bench.pool)} items; "
                "use the weights learned on this pool"
            )
    idx = select(
        method, n=len(bench.pool), gamma=gamma, weights=w, generator=generator(int(cfg["seed"]), 5)
    )
    path = out / f"subset_{method}.csv"
    write_manifest(path, idx, w, bench.pool.family, bench.pool.source)
    summary: dict[str, Any] = {"method": method, "gamma": gamma, "pool_size": len(bench.pool)}
    summary["size"] = len(idx)
    if bench.pool.family is not None:
        summary["composition"] = composition(idx, bench.pool.family)
    write_json(out / "subset_summary.json", summary)
    print(
        f"{method}: kept {len(idx)} of {len(bench.pool)} items "
        f"({100 * len(idx) / len(bench.pool):.1f}%) -> {path}"
    )
    for fam, c in summary.get("composition", {}).items():
        print(f"  {fam:<10} pool {100 * c['pool']:5.1f}%   subset {100 * c['subset']:5.1f}%")


def cmd_finetune(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    bench = load_benchmark(cfg)
    out, device = _start(args, cfg)
    seed = int(cfg["seed"])
    if args.background == "none":
        subset = None
    elif args.background == "full":
        subset = torch.arange(len(bench.pool))
    elif args.subset:
        subset = read_manifest(args.subset)["indices"]
        if len(subset) and int(subset.max()) >= len(bench.pool):
            raise UserError(f"{args.subset} refers to items beyond the pool's {len(bench.pool)}")
    elif args.background == "random":
        subset = select(
            "random",
            n=len(bench.pool),
            gamma=float(cfg["select"]["gamma"]),
            generator=generator(seed, 101),
        )
    else:
        raise UserError(
            "--background resampled needs --subset MANIFEST.csv (from `bgresample select`)"
        )
    model = _load_checkpoint(cfg, bench, args.checkpoint)
    info = finetune(
        model,
        bench.train,
        bench.pool,
        subset,
        C.finetune_settings(cfg),
        device=device,
        seed=seed,
        flip=bench.flip,
        channels_last=bool(cfg["model"]["channels_last"]),
        quiet=args.quiet,
    )
    save_model(
        out / "finetune.safetensors", model, {"stage": "finetune", "variant": args.background}
    )
    write_json(out / "finetune.json", {"background": args.background, **info})
    log.info("wrote %s", out / "finetune.safetensors")


def cmd_run(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    bench = load_benchmark(cfg)
    out, device = _start(args, cfg)
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    pre_path, _ = ensure_pretrained(cfg, bench, out, device, args.quiet)
    timing["pretrain"] = time.perf_counter() - t0
    per_seed = []
    for k in range(int(cfg["run"]["seeds"])):
        seed = int(cfg["seed"]) + k
        log.info("== seed %d (%d of %d)", seed, k + 1, cfg["run"]["seeds"])
        per_seed.append(
            run_seed(cfg, bench, pre_path, seed, out / f"seed_{seed}", device, args.quiet)
        )
    results = aggregate(per_seed, cfg["evaluate"]["convention"])
    stage_times: dict[str, float] = {}
    for s in per_seed:
        for key, val in s["timing_s"].items():
            stage = key.split("_")[0]
            stage_times[stage] = stage_times.get(stage, 0.0) + val
    timing.update(stage_times)
    timing["total"] = time.perf_counter() - t_start
    results["timing_s"] = timing
    results["benchmark"] = bench.name
    results["pool_size"] = len(bench.pool)
    results["ood_sets"] = list(bench.ood)
    write_json(out / "results.json", results)
    write_report(out, results, cfg)
    print(tables.table2_text(results))
    print(tables.CONVENTION_NOTE[results["convention"]])
    log.info("report: %s", out / "report.md")
