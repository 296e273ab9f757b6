"""The experiment behind ``run`` and ``compare-selectors``: pre-train once, then for each seed
learn the background weights (Algorithm 1, when a variant needs them), and for each variant
fine-tune the pre-trained model with the background its selector chooses and evaluate it.

``run`` is this with the paper's variants none / full / random / resampled (Tables 2 and 3);
``compare-selectors`` with every selector of :mod:`bgresample.selectors`. Every variant of a
seed starts from the same pre-trained model and trains on the same ID batches; outputs go to
``OUT/seed_<seed>/`` and, aggregated over seeds, to ``OUT/results.json`` (schema:
``docs/results.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from bgresample import dist, scalars
from bgresample.checkpoint import (
    load_model_state,
    load_tensors,
    read_meta,
    save_model,
    save_npz,
    save_tensors,
    tensor_shapes,
)
from bgresample.config import Config, FinetuneConfig
from bgresample.data.export import sources_at
from bgresample.data.pools import pool_signature
from bgresample.engine.aggregate import aggregate
from bgresample.engine.benchmark import Benchmark
from bgresample.engine.evaluate import evaluate, protocol_for, whole_sets
from bgresample.engine.finetune import finetune, head_seed
from bgresample.engine.pretrain import pretrain
from bgresample.engine.resample import resample
from bgresample.errors import UserError
from bgresample.losses import BACKGROUND_LOSSES, section_of
from bgresample.losses.hopfield import attach_stored_head
from bgresample.losses.registry import ALPHA
from bgresample.metrics import accuracy
from bgresample.models import build_model as build_architecture
from bgresample.resampling import BackgroundResampler, composition, write_manifest
from bgresample.results import (
    SCHEMA,
    Budget,
    FamilyShare,
    ResampleSummary,
    RunResults,
    SeedResults,
    SeedSelection,
    SeedValidation,
    SeedVariant,
)
from bgresample.runfolder import write_json
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.runtime.forward import predict_logits
from bgresample.scores import get_score
from bgresample.selectors import (
    NONE,
    SelectionContext,
    Selector,
    build_selector,
    variant_parts,
    weight_selectors,
)
from bgresample.selectors.hopfield_boosting import store_patterns

log = logging.getLogger("bgresample")

#: The loss whose projection head the ``hopfield`` score reads.
HOPFIELD_LOSS = "hopfield"


def build_model(cfg: Config, num_classes: int) -> torch.nn.Module:
    """The config's model (``model.name``, ``model.kwargs``) at input size ``data.size``, with
    the input normalisation it is trained for in its ``normalization`` attribute (saved with it:
    :func:`bgresample.checkpoint.save_model`)."""
    model = build_architecture(cfg.model.name, num_classes, cfg.model.kwargs, cfg.data.size)
    d = cfg.data
    model.normalization = {
        "size": d.size,
        "mean": [float(v) for v in d.mean],
        "std": [float(v) for v in d.std],
    }
    return model


def load_pretrained(cfg: Config, bench: Benchmark, path: Path) -> torch.nn.Module:
    """The config's model with the weights of the checkpoint at ``path`` (with the Hopfield
    projection head and stored patterns of a model fine-tuned with ``finetune.loss=hopfield``
    when the checkpoint holds them)."""
    if not Path(path).is_file():
        raise UserError(
            f"checkpoint {path} not found; pass the .safetensors file that "
            "`bgresample pretrain` or `finetune` wrote (e.g. RUN/pretrain.safetensors)"
        )
    model = build_model(cfg, bench.num_classes)
    attach_stored_head(model, tensor_shapes(path))
    load_model_state(path, model)
    return model


def score_name(cfg: Config) -> str:
    """``selectors.score``; ``auto`` = the score that goes with ``finetune.loss`` (its
    ``LossSpec.score``: extra_class, energy, hopfield, else msp)."""
    name = cfg.selectors.score
    return BACKGROUND_LOSSES[cfg.finetune.loss].score if name == "auto" else name


def selection_context(cfg: Config, bench: Benchmark, env: Env, **weights: Any) -> SelectionContext:
    """What a selector sees for ``cfg`` on ``bench`` with ``env``'s seed; ``weights`` are the
    learned weights and their costs (``SelectionContext``'s ``weights*`` fields), if any."""
    return SelectionContext(
        pool=bench.pool,
        train=bench.train,
        accel=env.accel,
        seed=env.seed,
        gamma=cfg.select.gamma,
        batch_size=finetune_section(cfg).background_batch_size,
        order=finetune_section(cfg).background_order,
        score=score_name(cfg),
        score_batch_size=cfg.evaluate.batch_size,
        id_batch_size=finetune_section(cfg).batch_size,
        flip=env.flip,
        background_flip=env.bg_flip,
        **weights,
    )


def loss_options(cfg: Config) -> Any:
    """The options of ``finetune.loss`` (its ``selectors.SECTION`` section), or None."""
    return cfg.selectors.options.get(section_of(cfg.finetune.loss))


def finetune_section(cfg: Config) -> FinetuneConfig:
    """The ``finetune`` section; a loss whose options have ``alpha`` (``energy``: Liu et al.'s
    lambda, ``selectors.energy.alpha``) replaces ``finetune.alpha`` with it."""
    alpha = getattr(loss_options(cfg), ALPHA, None)
    return cfg.finetune if alpha is None else replace(cfg.finetune, alpha=alpha)


def cell_config(cfg: Config, name: str) -> Config:
    """The config variant ``name`` fine-tunes with: ``cfg`` for a plain selector name, ``cfg``
    with ``finetune.loss=LOSS`` (and ``finetune.lr`` from ``selectors.cell_lr[LOSS]`` where
    given) for a cell ``SELECTOR+LOSS`` (:func:`variant_parts`)."""
    loss = variant_parts(name)[1]
    if loss is None:
        return cfg
    lr = cfg.selectors.cell_lr.get(loss, cfg.finetune.lr)
    if loss == cfg.finetune.loss and lr == cfg.finetune.lr:
        return cfg
    return replace(cfg, finetune=replace(cfg.finetune, loss=loss, lr=lr))


def pretrain_key(cfg: Config) -> str:
    """What a pre-trained checkpoint depends on; a cached one is reused only if this matches.
    The keys of the MNIST benchmark (``data.benchmark``, ``data.mnist``) count only where it
    is used, so the embedded benchmark's keys are those from before they existed."""
    data = asdict(cfg.data)
    if cfg.data.benchmark == "embedded" or cfg.data.id is not None:
        data.pop("benchmark")
        data.pop("mnist")
    parts = [data, asdict(cfg.model), asdict(cfg.pretrain), cfg.seed]
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def ensure_pretrained(
    cfg: Config, bench: Benchmark, out: Path, env: Env, resume: bool = False
) -> Path:
    """Pre-train once into ``out/pretrain/`` (reused when its key matches; resumed from its
    state with ``resume``). Returns the checkpoint's path."""
    folder = out / "pretrain"
    path = folder / "pretrain.safetensors"
    key = pretrain_key(cfg)
    if dist.broadcast_object(path.is_file() and read_meta(path).get("key") == key):
        log.info("pretrain: reusing %s", path)
        return path
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, bench.num_classes)
    pretrain(model, bench.train, cfg.pretrain, env, out=folder, resume=resume, meta={"key": key})
    dist.barrier()
    return path


def done(*paths: Path) -> bool:
    """Whether every output exists (decided on rank 0, the same on every rank)."""
    return bool(dist.broadcast_object(all(p.is_file() for p in paths)))


def learned_weights(
    cfg: Config,
    bench: Benchmark,
    checkpoint: Path,
    out: Path,
    env: Env,
    resume: bool = False,
) -> tuple[BackgroundResampler, dict[str, Any], torch.Tensor]:
    """Algorithm 1 from the model at ``checkpoint``: (resampler, history, draws per item), saved
    in ``out`` (``weights.safetensors``, ``resample_history.json``,
    ``resample_draws.safetensors``); with ``resume``, read back when saved, or continued from its
    state."""
    wpath, hpath, dpath = (
        out / "weights.safetensors",
        out / "resample_history.json",
        out / "resample_draws.safetensors",
    )
    if resume and done(wpath, hpath, dpath):
        return load_resampler(wpath), json.loads(hpath.read_text()), load_tensors(dpath)[0]["draws"]
    torch.manual_seed(env.seed)
    model = load_pretrained(cfg, bench, checkpoint)
    resampler, hist = resample(
        model,
        bench.train,
        bench.pool,
        cfg.resample,
        env,
        state_path=out / "resample.state.safetensors",
        resume=resume,
    )
    draws = hist.pop("draws")
    if dist.info().is_main:
        save_tensors(dpath, {"draws": draws}, {})
        write_json(hpath, hist)
        pool = {"pool": pool_signature(bench.pool), "pool_size": str(len(bench.pool))}
        resampler.save(wpath, pool)  # what select and export check the pool against
    return resampler, hist, draws


def load_resampler(path: str | Path) -> BackgroundResampler:
    """The resampler saved at ``path``, or a :class:`UserError` that says what is wrong."""
    try:
        return BackgroundResampler.load(path)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{e}; pass the weights.safetensors that `bgresample resample` wrote"
        ) from None


def run_experiment(
    cfg: Config,
    names: list[str],
    bench: Benchmark,
    out: Path,
    accel: Accel,
    *,
    quiet: bool = False,
    resume: bool = False,
    quick: bool = False,
) -> RunResults:
    """Pre-train, then :func:`run_seed` for each of ``run.seeds`` seeds with the variants
    ``names``; write ``results.json`` (marked as a smoke test with ``quick``). Returns the
    results aggregated over seeds."""
    t_start = time.perf_counter()
    env = Env(accel, cfg.seed, bench.flip, quiet, bench.background_flip)
    pre_path = ensure_pretrained(cfg, bench, out, env, resume)
    timing = {"pretrain": time.perf_counter() - t_start}
    per_seed = []
    for k in range(cfg.run.seeds):
        seed = cfg.seed + k
        log.info("== seed %d (%d of %d)", seed, k + 1, cfg.run.seeds)
        seed_env = Env(accel, seed, bench.flip, quiet, bench.background_flip)
        res, seed_timing = run_seed(
            cfg, names, bench, pre_path, out / f"seed_{seed}", seed_env, resume
        )
        for key, val in seed_timing.items():
            timing[key] = timing.get(key, 0.0) + val
        per_seed.append(res)
    results = aggregate(per_seed, cfg.evaluate.convention, cfg.evaluate.fpr95)
    results.schema = SCHEMA
    results.budget = _budget(cfg, next(iter(per_seed[0].variants.values())))
    timing["total"] = time.perf_counter() - t_start
    results.timing_s = timing
    results.benchmark = bench.name
    results.pool_size = len(bench.pool)
    results.ood_sets = list(bench.ood)
    results.protocol = cfg.evaluate.protocol
    results.groups = bench.groups
    results.quick = quick or None
    if dist.info().is_main:
        write_json(out / "results.json", results.to_json())
    return results


def run_seed(
    cfg: Config,
    names: list[str],
    bench: Benchmark,
    pre_path: Path,
    out: Path,
    env: Env,
    resume: bool = False,
) -> tuple[SeedResults, dict[str, float]]:
    """One seed: Algorithm 1 once if a variant needs the weights, then fine-tune and evaluate
    every variant (:func:`run_variant`). With ``resume``, finished stages are read back and an
    interrupted one continues from its last state. Writes ``out/results.json``; returns the
    seed's results and wall seconds per stage."""
    if dist.info().is_main:
        out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    result = SeedResults(seed=env.seed, variants={})
    weights, weights_cost = None, 0
    if weight_selectors(names):
        t0 = time.perf_counter()
        resampler, hist, draws = learned_weights(cfg, bench, pre_path, out, env, resume)
        timing["resample"] = time.perf_counter() - t0
        weights = resampler.weights().cpu()
        weights_cost = int(hist["steps"]) * cfg.resample.batch_size
        result.resample = _resample_summary(hist, weights, draws, bench.pool.family)
    ctx = selection_context(
        cfg,
        bench,
        env,
        weights=weights,
        weights_cost=weights_cost,
        # forward + backward (3 forward-pass equivalents) over as many ID items as pool items
        weights_fwd_eq=6 * weights_cost,
        weights_seconds=timing.get("resample", 0.0),
    )
    for name in names:
        cell = cell_config(cfg, name)
        cell_ctx = ctx if cell is cfg else replace(ctx, score=score_name(cell))
        result.variants[name] = run_variant(
            cell, name, cell_ctx, bench, pre_path, out, env, resume, timing
        )
    comps = {v: r.composition for v, r in result.variants.items() if r.composition is not None}
    result.composition = comps or None
    if dist.info().is_main:
        write_json(out / "results.json", result.to_json())
    return result, timing


def run_variant(
    cfg: Config,
    name: str,
    ctx: SelectionContext,
    bench: Benchmark,
    pre_path: Path,
    out: Path,
    env: Env,
    resume: bool,
    timing: dict[str, float],
) -> SeedVariant:
    """Fine-tune the pre-trained model with variant ``name``'s background and evaluate it;
    write its model, scores, results and (for a static subset) manifest into ``out``, and its
    accuracy and average FPR95 / AUROC / AUPR as the scalars ``final/<name>/...`` at step
    seed. With ``resume``, a variant that finished is read back."""
    mpath, rpath = out / f"{name}.safetensors", out / f"{name}.json"
    if resume and done(mpath, rpath):
        return SeedVariant.from_json(json.loads(rpath.read_text()))
    t0 = time.perf_counter()
    torch.manual_seed(env.seed)
    model = load_pretrained(cfg, bench, pre_path)
    options = {**cfg.selectors.to_options(), "resampled": {"method": cfg.select.method}}
    selector = build_selector(name, ctx, options)
    ft = finetune_section(cfg)
    info = finetune(
        model,
        bench.train,
        selector,
        ft,
        env,
        loss_options=loss_options(cfg),
        state_path=out / f"{name}.state.safetensors",
        resume=resume,
        variant=name,
    )
    timing["finetune"] = timing.get("finetune", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    ensure_hopfield_patterns(cfg, model, ctx, [ctx.score], ft.epochs)
    evaluation, scores = evaluate(
        model,
        bench.test,
        bench.ood,
        protocol_for(cfg.evaluate, len(bench.test), bench.ood),
        accel=env.accel,
        seed=env.seed,
        scores=ctx.score,
        train=bench.train,
        groups=bench.groups,
        shifted=bench.shifted,
        num_classes=bench.num_classes,
    )
    validation = None
    if bench.val is not None and bench.val_ood:
        # every item of every validation OOD set once (the ID validation split is small: a
        # 0.2 x |ID val| subsample would leave too few OOD items for a stable FPR95)
        protocol = whole_sets(cfg.evaluate, len(bench.val), bench.val_ood)
        val, _ = evaluate(
            model,
            bench.val,
            bench.val_ood,
            protocol,
            accel=env.accel,
            seed=env.seed,
            scores=ctx.score,  # the score the test sets are evaluated with
            train=bench.train,
            num_classes=bench.num_classes,
        )
        validation = SeedValidation(accuracy=val.accuracy, average=val.average, ood=val.ood)
    if BACKGROUND_LOSSES[ft.loss].extra_class:  # accuracy over the K ID classes, not class K
        logits = predict_logits(model, bench.test, env.accel, cfg.evaluate.batch_size)
        evaluation.accuracy = accuracy(
            logits[:, : bench.num_classes].numpy(), bench.test.targets.cpu().numpy()
        )
    timing["evaluate"] = timing.get("evaluate", 0.0) + time.perf_counter() - t0
    cost = selection_cost(info.pop("selection", None), ctx, ft.epochs)
    res = SeedVariant(
        evaluation=evaluation,
        validation=validation,
        selection=cost,
        subset_size=cost.working_set,
        finetune=info,
    )
    trained_on = None if selector is None else _trained_on(selector)
    if trained_on is not None and bench.pool.family is not None and len(trained_on) < len(ctx.pool):
        shares = composition(trained_on, bench.pool.family)
        res.composition = {f: FamilyShare.from_json(s) for f, s in shares.items()}
    if dist.info().is_main:
        _save_variant(out, name, env.seed, model, res, scores, selector, ctx)
    final = {"acc": evaluation.accuracy}
    final.update({f"avg_{m}": evaluation.average[m].mean for m in ("fpr95", "auroc", "aupr")})
    scalars.record(f"final/{name}", final, env.seed, axis="seed")
    log.info(
        "seed %d %-11s acc %.2f  avg FPR95 %.2f  AUROC %.2f  AUPR %.2f  pool fwd %d",
        env.seed,
        name,
        evaluation.accuracy,
        evaluation.average["fpr95"].mean,
        evaluation.average["auroc"].mean,
        evaluation.average["aupr"].mean,
        cost.total,
    )
    return res


def ensure_hopfield_patterns(
    cfg: Config, model: torch.nn.Module, ctx: SelectionContext, scores: list[str], epochs: int
) -> None:
    """Where one of ``scores`` is fitted on the model (``hopfield``) and ``model`` stores no
    patterns yet (a freshly fine-tuned model, or a checkpoint of ``finetune``), store the ones
    that score reads: those of the ID epoch after the last
    (:func:`bgresample.selectors.hopfield_boosting.store_patterns`). A model without a
    projection head (fine-tuned with another loss, or with no background) first gets the one
    ``finetune.loss=hopfield`` would give it (``selectors.hopfield-loss``, the seed's)."""
    if not any(get_score(n).fit_model for n in scores):
        return
    head = getattr(model, "hopfield", None)
    if getattr(head, "id_patterns", None) is not None:
        return
    if head is None:
        opts = cfg.selectors.options[section_of(HOPFIELD_LOSS)]
        BACKGROUND_LOSSES[HOPFIELD_LOSS].build(opts).add_head(model, head_seed(ctx.seed))
    store_patterns(model, ctx, epochs)


def _trained_on(selector: Selector) -> torch.Tensor:
    """A static selector's subset; the items a dynamic one trained on."""
    return selector.working if selector.static else torch.nonzero(selector.used).flatten()


def _save_variant(
    out: Path,
    name: str,
    seed: int,
    model: torch.nn.Module,
    res: SeedVariant,
    scores: dict[str, Any],
    selector: Selector | None,
    ctx: SelectionContext,
) -> None:
    """A fine-tuned variant's OOD scores, model, results and, for a static subset smaller
    than the pool, its manifest (rank 0). The results file is written last: it marks the
    variant done."""
    save_npz(out / f"scores_{name}.npz", scores)
    if selector is not None and selector.static and len(selector.working) < len(ctx.pool):
        pool = ctx.pool
        weights = ctx.weights if weight_selectors([name]) else None
        sources = sources_at(pool, selector.working)
        write_manifest(out / f"subset_{name}.csv", selector.working, weights, pool.family, sources)
    save_model(
        out / f"{name}.safetensors", model, {"stage": "finetune", "variant": name, "seed": seed}
    )
    write_json(out / f"{name}.json", res.to_json())


def selection_cost(
    summary: dict[str, Any] | None, ctx: SelectionContext, epochs: int
) -> SeedSelection:
    """A selector's budget and costs: pool forward passes before fine-tuning (``setup``, e.g.
    Algorithm 1), per fine-tuning epoch and in total, ID forward passes (``id``), all of it in
    forward-pass equivalents (``fwd_eq``: a backward counts as two forwards), the measured wall
    seconds of choosing (``seconds``), and distinct items trained on."""
    if summary is None:
        summary = {
            "refresh": NONE,
            "working_set": 0,
            "forwards": {"setup": 0, "during": 0, "id": 0},
            "setup_fwd_eq": 0,
            "seconds": 0.0,
            "distinct_items": 0,
        }
    fw = summary["forwards"]
    return SeedSelection(
        refresh=summary["refresh"],
        budget=ctx.budget,
        background_epoch_steps=ctx.epoch_steps,
        working_set=summary["working_set"],
        setup=fw["setup"],
        per_epoch=fw["during"] / max(epochs, 1),
        total=fw["setup"] + fw["during"],
        id=fw["id"],
        fwd_eq=summary["setup_fwd_eq"] + fw["during"] + fw["id"],
        seconds=summary["seconds"],
        distinct_items=summary["distinct_items"],
    )


def _budget(cfg: Config, first: SeedVariant) -> Budget:
    """The budget every variant shared (read from the first variant of a seed)."""
    ft = finetune_section(cfg)
    assert first.selection is not None and first.finetune is not None
    return Budget(
        gamma=cfg.select.gamma,
        k=first.selection.budget,
        background_epoch_steps=first.selection.background_epoch_steps,
        finetune_epochs=ft.epochs,
        background_draws=first.finetune["steps"] * ft.background_batch_size,
        loss=ft.loss,
        alpha=ft.alpha,
        score=score_name(cfg),
    )


def _resample_summary(
    hist: dict[str, Any], w: torch.Tensor, draws: torch.Tensor, family: list[str] | None
) -> ResampleSummary:
    """Algorithm 1's diagnostics for the report."""
    return ResampleSummary(
        draws_per_item=hist["draws_per_item"],
        never_drawn=hist["never_drawn"],
        ess_final=hist["ess"][-1],
        weight_draws_spearman=float(stats.spearmanr(w.numpy(), draws.numpy())[0]),
        weight_by_family=_weight_by_family(w, family),
    )


def _weight_by_family(w: torch.Tensor, family: list[str] | None) -> dict[str, float]:
    """Mean learned weight of each family, relative to the pool's mean weight."""
    if family is None:
        return {}
    fam = np.array(family)
    wn = w.numpy() / float(w.mean())
    return {f: float(wn[fam == f].mean()) for f in sorted(set(family))}
