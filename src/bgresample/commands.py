"""The stage commands behind the CLI; each writes into its run folder (rank 0 only)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bgresample import dist, scalars
from bgresample.checkpoint import load_model_state, save_model
from bgresample.data.benchmark import Benchmark, load_benchmark
from bgresample.engine import compare_selectors
from bgresample.engine.common import Accel, generator
from bgresample.engine.evaluate import evaluate
from bgresample.engine.experiment import (
    RANDOM_SUBSET_STREAM,
    aggregate,
    build_model,
    ensure_pretrained,
    run_seed,
)
from bgresample.engine.finetune import finetune
from bgresample.engine.pretrain import pretrain
from bgresample.engine.resample import resample
from bgresample.errors import UserError
from bgresample.reports import tables
from bgresample.reports.build import build_report
from bgresample.reports.compare import compare_runs, compare_text
from bgresample.resampling import (
    BackgroundWeights,
    composition,
    read_manifest,
    select,
    write_manifest,
)
from bgresample.runfolder import prepare_run_folder, setup_logging, write_json

log = logging.getLogger("bgresample")


def _start(args: argparse.Namespace, cfg: dict[str, Any]) -> tuple[Path, Accel, Benchmark]:
    """Run folder (refusing to clobber another run), logging, accelerator and data."""
    main = dist.info().is_main
    out = prepare_run_folder(
        args.out, cfg, args.command, overwrite=args.overwrite, resume=args.resume, write=main
    )
    setup_logging(out, args.quiet or not main, write=main)
    scalars.configure(out)
    torch.manual_seed(int(cfg["seed"]))
    accel = Accel.from_config(cfg)
    bench = load_benchmark(cfg)
    accel.stage(bench.train, bench.test, bench.pool, *bench.ood.values())
    return out, accel, bench


def _checkpoint_model(cfg: dict[str, Any], bench: Benchmark, path: str) -> torch.nn.Module:
    if not Path(path).is_file():
        raise UserError(
            f"checkpoint {path} not found; pass the .safetensors file that "
            "`bgresample pretrain` or `finetune` wrote (e.g. RUN/pretrain.safetensors)"
        )
    model = build_model(cfg, bench.num_classes)
    load_model_state(path, model)
    return model


def _report_skipped(bench: Benchmark) -> None:
    """List the unreadable images that folder datasets skipped during the stage."""
    for name, src in [("background", bench.pool), *bench.ood.items()]:
        skipped = getattr(src, "skipped", None)
        if skipped:
            shown = ", ".join(str(p) for p in skipped[:5])
            log.warning("%s: skipped %d unreadable images (%s ...)", name, len(skipped), shown)


def cmd_pretrain(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, accel, bench = _start(args, cfg)
    model = build_model(cfg, bench.num_classes)
    res = pretrain(
        model,
        bench.train,
        cfg["pretrain"],
        accel=accel,
        seed=int(cfg["seed"]),
        flip=bench.flip,
        out=out,
        resume=args.resume,
        quiet=args.quiet,
    )
    if dist.info().is_main:
        write_json(out / "pretrain_history.json", res["history"])
    log.info("wrote %s", out / "pretrain.safetensors")


def cmd_evaluate(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """Evaluate a checkpoint with one or more OOD scores (``--scores msp,energy,...``).

    ``results.json`` keeps the layout of a single-score run: ``variants = {VARIANT: res}`` where
    ``res`` (accuracy, ood, averages) is that of the first score, so reports and ``compare`` read
    it unchanged; with several scores ``res["scores"][NAME]`` holds each score's ``ood`` /
    ``average`` / ``average_no_noise``, and the top-level ``scores`` lists the names in order.
    One console table is printed per score; the raw scores go to ``scores_VARIANT.npz`` (first
    score under ``id`` / ``SET``, the others under ``NAME:id`` / ``NAME:SET``).
    """
    from bgresample.scores import parse_scores

    names = parse_scores(getattr(args, "scores", None) or "msp")
    out, accel, bench = _start(args, cfg)
    model = _checkpoint_model(cfg, bench, args.checkpoint)
    model.to(accel.device)  # the batches go to accel.device; the weights must be there too
    if accel.channels_last:
        model.to(memory_format=torch.channels_last)
    res, scores = evaluate(
        model,
        bench.test,
        bench.ood,
        cfg["evaluate"],
        accel=accel,
        seed=int(cfg["seed"]),
        scores=names,
        train=bench.train,
    )
    results = {
        "variants": {args.variant: res},
        "convention": res["convention"],
        "checkpoint": str(args.checkpoint),
        "protocol": {k: cfg["evaluate"][k] for k in ("ratio", "repeats")},
        "scores": names,
    }
    _report_skipped(bench)
    if dist.info().is_main:
        write_json(out / "results.json", results)
        np.savez_compressed(out / f"scores_{args.variant}.npz", **scores)
        if len(names) == 1:
            print(tables.table2_text(results))
        else:
            for name in names:
                one = {"accuracy": res["accuracy"], **res["scores"][name]}
                print(f"\nscore: {name}")
                print(tables.table2_text({"variants": {f"{args.variant}:{name}": one}}))
        print(tables.CONVENTION_NOTE[res["convention"]])


def cmd_resample(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, accel, bench = _start(args, cfg)
    model = _checkpoint_model(cfg, bench, args.checkpoint)
    weights, hist = resample(
        model,
        bench.train,
        bench.pool,
        cfg["resample"],
        accel=accel,
        seed=int(cfg["seed"]),
        flip=bench.flip,
        state_path=out / "resample.state.safetensors",
        resume=args.resume,
        quiet=args.quiet,
    )
    hist.pop("draws")
    _report_skipped(bench)
    if dist.info().is_main:
        weights.save(out / "weights.safetensors")
        write_json(out / "resample_history.json", hist)
    log.info("wrote %s", out / "weights.safetensors")


def cmd_select(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, _, bench = _start(args, cfg)
    method, gamma = cfg["select"]["method"], float(cfg["select"]["gamma"])
    w = None
    if method not in ("random", "full"):
        if not args.weights:
            raise UserError(
                f"--method {method} needs --weights (the weights.safetensors of `resample`)"
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
    summary: dict[str, Any] = {"method": method, "gamma": gamma, "pool_size": len(bench.pool)}
    summary["size"] = len(idx)
    if bench.pool.family is not None:
        summary["composition"] = composition(idx, bench.pool.family)
    if not dist.info().is_main:
        return
    path = out / f"subset_{method}.csv"
    write_manifest(path, idx, w, bench.pool.family, bench.pool.source)
    write_json(out / "subset_summary.json", summary)
    share = 100 * len(idx) / len(bench.pool)
    print(f"{method}: kept {len(idx)} of {len(bench.pool)} items ({share:.1f}%) -> {path}")
    for fam, c in summary.get("composition", {}).items():
        print(f"  {fam:<10} pool {100 * c['pool']:5.1f}%   subset {100 * c['subset']:5.1f}%")


def cmd_finetune(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, accel, bench = _start(args, cfg)
    seed = int(cfg["seed"])
    n = len(bench.pool)
    if args.background == "none":
        subset = None
    elif args.background == "full":
        subset = torch.arange(n)
    elif args.subset:
        subset = read_manifest(args.subset)["indices"]
        if len(subset) and int(subset.max()) >= n:
            raise UserError(f"{args.subset} refers to items beyond the pool's {n}; wrong pool?")
    elif args.background == "random":
        gamma = float(cfg["select"]["gamma"])
        subset = select("random", n=n, gamma=gamma, generator=generator(seed, RANDOM_SUBSET_STREAM))
    else:
        raise UserError(
            "--background resampled needs --subset MANIFEST.csv (from `bgresample select`)"
        )
    model = _checkpoint_model(cfg, bench, args.checkpoint)
    info = finetune(
        model,
        bench.train,
        bench.pool,
        subset,
        cfg["finetune"],
        accel=accel,
        seed=seed,
        flip=bench.flip,
        state_path=out / "finetune.state.safetensors",
        resume=args.resume,
        quiet=args.quiet,
    )
    _report_skipped(bench)
    if dist.info().is_main:
        meta = {"stage": "finetune", "variant": args.background}
        save_model(out / "finetune.safetensors", model, meta)
        write_json(out / "finetune.json", {"background": args.background, **info})
    log.info("wrote %s", out / "finetune.safetensors")


def cmd_run(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    out, accel, bench = _start(args, cfg)
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    pre_path = ensure_pretrained(cfg, bench, out, accel, args.quiet, args.resume)
    timing["pretrain"] = time.perf_counter() - t0
    per_seed = []
    for k in range(int(cfg["run"]["seeds"])):
        seed = int(cfg["seed"]) + k
        log.info("== seed %d (%d of %d)", seed, k + 1, cfg["run"]["seeds"])
        per_seed.append(
            run_seed(
                cfg, bench, pre_path, seed, out / f"seed_{seed}", accel, args.quiet, args.resume
            )
        )
    results = aggregate(per_seed, cfg["evaluate"]["convention"])
    for s in per_seed:
        for key, val in s["timing_s"].items():
            stage = key.split("_")[0]
            timing[stage] = timing.get(stage, 0.0) + val
    timing["total"] = time.perf_counter() - t_start
    results["timing_s"] = timing
    results["benchmark"] = bench.name
    results["pool_size"] = len(bench.pool)
    results["ood_sets"] = list(bench.ood)
    _report_skipped(bench)
    if not dist.info().is_main:
        return
    write_json(out / "results.json", results)
    build_report(out, cfg["data"]["root"])
    print(tables.table2_text(results))
    print(tables.CONVENTION_NOTE[results["convention"]])
    log.info("report: %s", out / "report.md")


def cmd_datasets(args: argparse.Namespace) -> None:
    from bgresample.data.kinds import status

    print(f"Dataset kinds under {args.data_root}:")
    for row in status(args.data_root):
        mark = "found  " if row.found else "missing"
        generated = row.path is None and row.found
        where = "(generated)" if generated else (row.path or "(give KIND:PATH)")
        print(f"  [{mark}] {row.kind:<14} {'/'.join(row.roles):<18} {where}")
        print(f"            layout: {row.layout}")


def cmd_report(args: argparse.Namespace) -> None:
    path = build_report(args.run_dir, args.data_root)
    print(f"report: {path} and {path.with_suffix('.html')}")


def cmd_compare(args: argparse.Namespace) -> None:
    print(compare_text(args.run_dirs))
    print(f"written: {compare_runs(args.run_dirs, args.out)}")


def cmd_compare_selectors(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    compare_selectors.prepare(args, cfg)
    out, accel, bench = _start(args, cfg)
    compare_selectors.compare_selectors(
        cfg, bench, out, accel, quiet=args.quiet, resume=args.resume
    )
