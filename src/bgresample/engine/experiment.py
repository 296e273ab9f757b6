"""The paper's experiment (Tables 2 and 3) as one pipeline: pre-train once, then for each seed
resample, select, fine-tune None / Full / Random / Resampled and evaluate all four."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from bgresample import dist
from bgresample.checkpoint import (
    load_model_state,
    load_tensors,
    read_meta,
    save_model,
    save_tensors,
)
from bgresample.data.benchmark import Benchmark
from bgresample.engine.common import Accel, generator
from bgresample.engine.evaluate import evaluate
from bgresample.engine.finetune import finetune
from bgresample.engine.pretrain import pretrain
from bgresample.engine.resample import resample
from bgresample.models import create_model
from bgresample.resampling import BackgroundWeights, composition, select, write_manifest
from bgresample.runfolder import write_json

log = logging.getLogger("bgresample")

VARIANTS = ("none", "full", "random", "resampled")
METRICS = ("fpr95", "auroc", "aupr")
#: Stream offset that makes the Random baseline's subset independent of the training seed.
RANDOM_SUBSET_STREAM = 101


def build_model(cfg: dict[str, Any], num_classes: int) -> torch.nn.Module:
    return create_model(cfg["model"]["name"], num_classes, **(cfg["model"].get("kwargs") or {}))


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def pretrain_key(cfg: dict[str, Any]) -> str:
    """What a pre-trained checkpoint depends on; a cached one is reused only if this matches."""
    return _digest([cfg["data"], cfg["model"], cfg["pretrain"], cfg["seed"]])


def ensure_pretrained(
    cfg: dict[str, Any],
    bench: Benchmark,
    out: Path,
    accel: Accel,
    quiet: bool,
    resume: bool = False,
) -> Path:
    """Pre-train once into ``out/pretrain/`` (reused when its key matches; resumed from its
    state with ``resume``). Returns the checkpoint's path."""
    folder = out / "pretrain"
    path = folder / "pretrain.safetensors"
    key = pretrain_key(cfg)
    if dist.broadcast_object(path.is_file() and read_meta(path).get("key") == key):
        log.info("pretrain: reusing %s", path)
        return path
    torch.manual_seed(int(cfg["seed"]))
    model = build_model(cfg, bench.num_classes)
    pretrain(
        model,
        bench.train,
        cfg["pretrain"],
        accel=accel,
        seed=int(cfg["seed"]),
        flip=bench.flip,
        out=folder,
        resume=resume,
        quiet=quiet,
        meta={"key": key},
    )
    dist.barrier()
    return path


def load_pretrained(cfg: dict[str, Any], bench: Benchmark, path: Path) -> torch.nn.Module:
    model = build_model(cfg, bench.num_classes)
    load_model_state(path, model)
    return model


def done(*paths: Path) -> bool:
    """Whether every output exists (decided on rank 0, the same on every rank)."""
    return bool(dist.broadcast_object(all(p.is_file() for p in paths)))


def saved_variant(out: Path, name: str, resume: bool) -> dict[str, Any] | None:
    """With ``resume``, the results of variant ``name`` when :func:`save_variant` finished it."""
    mpath, rpath = out / f"{name}.safetensors", out / f"{name}.json"
    return json.loads(rpath.read_text()) if resume and done(mpath, rpath) else None


def save_variant(
    out: Path,
    name: str,
    seed: int,
    model: torch.nn.Module,
    res: dict[str, Any],
    scores: dict[str, Any],
) -> None:
    """Rank 0 writes a fine-tuned variant's OOD scores, model and results into ``out``."""
    if dist.info().is_main:
        np.savez_compressed(out / f"scores_{name}.npz", **scores)
        meta = {"stage": "finetune", "variant": name, "seed": seed}
        save_model(out / f"{name}.safetensors", model, meta)
        write_json(out / f"{name}.json", res)


def learned_weights(
    cfg: dict[str, Any],
    bench: Benchmark,
    pre_path: Path,
    seed: int,
    out: Path,
    accel: Accel,
    quiet: bool,
    resume: bool = False,
) -> tuple[BackgroundWeights, dict[str, Any], torch.Tensor]:
    """Algorithm 1 from the pre-trained model for ``seed``: (weights, history, draws per item),
    saved in ``out``; with ``resume``, read back when saved, or continued from its state."""
    wpath, hpath, dpath = (
        out / "weights.safetensors",
        out / "resample_history.json",
        out / "resample_draws.safetensors",
    )
    if resume and done(wpath, hpath, dpath):
        weights = BackgroundWeights.load(wpath)
        hist = json.loads(hpath.read_text())
        return weights, hist, load_tensors(dpath)[0]["draws"]
    torch.manual_seed(seed)
    model = load_pretrained(cfg, bench, pre_path)
    weights, hist = resample(
        model,
        bench.train,
        bench.pool,
        cfg["resample"],
        accel=accel,
        seed=seed,
        flip=bench.flip,
        state_path=out / "resample.state.safetensors",
        resume=resume,
        quiet=quiet,
    )
    draws = hist.pop("draws")
    if dist.info().is_main:
        save_tensors(dpath, {"draws": draws}, {})
        write_json(hpath, hist)
        weights.save(wpath)
    return weights, hist, draws


def run_seed(
    cfg: dict[str, Any],
    bench: Benchmark,
    pre_path: Path,
    seed: int,
    out: Path,
    accel: Accel,
    quiet: bool,
    resume: bool = False,
) -> dict[str, Any]:
    """One seed of the experiment: resample, select, fine-tune and evaluate every variant.

    With ``resume``, finished stages (their outputs exist) are loaded instead of re-run, and an
    interrupted stage continues from its last resumable state.
    """
    main = dist.info().is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    variants = list(cfg["run"]["variants"])
    gamma = float(cfg["select"]["gamma"])
    n_pool = len(bench.pool)
    subsets: dict[str, torch.Tensor | None] = {"none": None}
    extra: dict[str, Any] = {}

    if "resampled" in variants:
        t0 = time.perf_counter()
        weights, hist, draws = learned_weights(
            cfg, bench, pre_path, seed, out, accel, quiet, resume
        )
        timing["resample"] = time.perf_counter() - t0
        w = weights.weights().detach().cpu()
        subsets["resampled"] = select(
            cfg["select"]["method"], n=n_pool, gamma=gamma, weights=w, generator=generator(seed, 5)
        )
        if main:
            write_manifest(
                out / "subset_resampled.csv",
                subsets["resampled"],
                w,
                bench.pool.family,
                bench.pool.source,
            )
        extra["resample"] = {
            "draws_per_item": hist["draws_per_item"],
            "never_drawn": hist["never_drawn"],
            "ess_final": hist["ess"][-1],
            "weight_draws_spearman": float(stats.spearmanr(w.numpy(), draws.numpy())[0]),
            "weight_by_family": _weight_by_family(w, bench.pool.family),
        }
    if "random" in variants:
        subsets["random"] = select(
            "random", n=n_pool, gamma=gamma, generator=generator(seed, RANDOM_SUBSET_STREAM)
        )
        if main:
            write_manifest(
                out / "subset_random.csv",
                subsets["random"],
                None,
                bench.pool.family,
                bench.pool.source,
            )
    if "full" in variants:
        subsets["full"] = torch.arange(n_pool)

    if bench.pool.family is not None:
        extra["composition"] = {
            v: composition(subsets[v], bench.pool.family)
            for v in ("random", "resampled")
            if v in subsets
        }

    results: dict[str, Any] = {}
    for v in variants:
        t0 = time.perf_counter()
        saved = saved_variant(out, v, resume)
        if saved is not None:
            results[v] = saved
            continue
        torch.manual_seed(seed)
        model = load_pretrained(cfg, bench, pre_path)
        info = finetune(
            model,
            bench.train,
            bench.pool,
            subsets[v],
            cfg["finetune"],
            accel=accel,
            seed=seed,
            flip=bench.flip,
            state_path=out / f"{v}.state.safetensors",
            resume=resume,
            desc=f"finetune[{v}]",
            quiet=quiet,
        )
        timing[f"finetune_{v}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res, scores = evaluate(
            model, bench.test, bench.ood, cfg["evaluate"], accel=accel, seed=seed
        )
        timing[f"evaluate_{v}"] = time.perf_counter() - t0
        res["subset_size"] = 0 if subsets[v] is None else len(subsets[v])
        res["finetune"] = info
        results[v] = res
        save_variant(out, v, seed, model, res, scores)
        log.info(
            "seed %d %-9s acc %.2f  avg FPR95 %.2f  AUROC %.2f  AUPR %.2f",
            seed,
            v,
            res["accuracy"],
            res["average"]["fpr95"]["mean"],
            res["average"]["auroc"]["mean"],
            res["average"]["aupr"]["mean"],
        )
    seed_result = {"seed": seed, "variants": results, "timing_s": timing, **extra}
    if main:
        write_json(out / "results.json", seed_result)
    return seed_result


def _weight_by_family(w: torch.Tensor, family: list[str] | None) -> dict[str, float]:
    """Mean learned weight of each family, relative to the pool's mean weight."""
    if family is None:
        return {}
    fam = np.array(family)
    wn = w.numpy() / float(w.mean())
    return {f: float(wn[fam == f].mean()) for f in sorted(set(family))}


def _mean_std(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std())}


def _paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean of the per-seed differences a - b with a 95% t confidence interval."""
    d = np.asarray(a) - np.asarray(b)
    out: dict[str, Any] = {"mean": float(d.mean()), "per_seed": d.tolist()}
    if len(d) > 1:
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


def aggregate(per_seed: list[dict[str, Any]], convention: str) -> dict[str, Any]:
    """Mean and std over seeds of the per-seed means (the paper's Table 2 and 3), per-seed values
    and paired differences between variants."""
    variants = list(per_seed[0]["variants"])
    sets = list(per_seed[0]["variants"][variants[0]]["ood"])
    out: dict[str, Any] = {"variants": {}, "convention": convention, "seeds": []}
    out["seeds"] = [s["seed"] for s in per_seed]
    for v in variants:
        runs = [s["variants"][v] for s in per_seed]
        entry: dict[str, Any] = {
            "accuracy": float(np.mean([r["accuracy"] for r in runs])),
            "accuracy_std": float(np.std([r["accuracy"] for r in runs])),
            "subset_size": float(np.mean([r["subset_size"] for r in runs])),
            "ood": {
                s: {m: _mean_std([r["ood"][s][m]["mean"] for r in runs]) for m in METRICS}
                for s in sets
            },
        }
        for key in ("average", "average_no_noise"):
            if all(r.get(key) for r in runs):
                entry[key] = {m: _mean_std([r[key][m]["mean"] for r in runs]) for m in METRICS}
        entry["per_seed"] = [
            {
                "seed": s["seed"],
                "accuracy": s["variants"][v]["accuracy"],
                "average": {m: s["variants"][v]["average"][m]["mean"] for m in METRICS},
                "ood": {
                    k: {m: s["variants"][v]["ood"][k][m]["mean"] for m in METRICS} for k in sets
                },
            }
            for s in per_seed
        ]
        out["variants"][v] = entry
    pairs = [("resampled", "random"), ("resampled", "full"), ("random", "full")]
    out["paired_differences"] = {}
    for a, b in pairs:
        if a in out["variants"] and b in out["variants"]:
            diffs = {}
            for key in ("average", "average_no_noise"):
                if key in out["variants"][a] and key in out["variants"][b]:
                    diffs[key] = {
                        m: _paired(
                            [s["variants"][a][key][m]["mean"] for s in per_seed],
                            [s["variants"][b][key][m]["mean"] for s in per_seed],
                        )
                        for m in METRICS
                    }
            out["paired_differences"][f"{a}_minus_{b}"] = diffs
    comps = [s["composition"] for s in per_seed if "composition" in s]
    if comps:
        out["composition"] = {
            v: {
                f: {
                    "pool": comps[0][v][f]["pool"],
                    "subset": float(np.mean([c[v][f]["subset"] for c in comps])),
                }
                for f in comps[0][v]
            }
            for v in comps[0]
        }
    res = [s["resample"] for s in per_seed if "resample" in s]
    if res:
        out["resample"] = {
            "draws_per_item": res[0]["draws_per_item"],
            "never_drawn": float(np.mean([r["never_drawn"] for r in res])),
            "weight_draws_spearman": float(np.mean([r["weight_draws_spearman"] for r in res])),
            "weight_by_family": {
                f: float(np.mean([r["weight_by_family"][f] for r in res]))
                for f in res[0]["weight_by_family"]
            },
        }
    return out
