"""``bgresample plan``: the stages of ``run`` with the engine's step counts, as text or JSON, from
the data's sizes or, when the data is missing, the nominal sizes of its kinds."""

from __future__ import annotations

import json
import math

import numpy as np

from bgresample import config as C
from bgresample.cli import main
from bgresample.engine import plan as plan_module
from bgresample.engine.plan import Sizes, data_sizes, plan_text, stages
from bgresample.metrics import protocol_indices

NO_DATA = ["--background", "random300k:/nonexistent.npy", "--set", "model.name=small_cnn"]


def expected_steps(cfg: C.Config, sizes: Sizes) -> dict[str, tuple[int, int]]:
    """(runs, steps) of each stage, from the config and the engine's formulas."""
    seeds, variants = cfg.run.seeds, cfg.run.variants

    def spe(bs: int, drop_last: bool = True) -> int:  # runtime.batches.steps_per_epoch
        return max(sizes.train // bs if drop_last else math.ceil(sizes.train / bs), 1)

    pre = cfg.pretrain
    out = {"pretrain": (1, pre.epochs * spe(pre.batch_size, pre.drop_last))}
    if {"resampled", "topk-weight"} & set(variants):
        rs = cfg.resample
        if rs.epochs:
            out["resample"] = (seeds, rs.epochs * spe(rs.batch_size))
        else:
            out["resample"] = (seeds, math.ceil(rs.draws_per_item * sizes.pool / rs.batch_size))
    for v in variants:
        out[f"finetune[{v}]"] = (seeds, cfg.finetune.epochs * spe(cfg.finetune.batch_size))
    ev = cfg.evaluate
    draws = protocol_indices(sizes.test, sizes.ood, ev.ratio, ev.repeats, cfg.seed)
    passes = [sizes.test, *(len(np.unique(np.concatenate(d))) for d in draws.values())]
    passes += [sizes.val, *(n for n in (sizes.holdout, sizes.val_ood) if n)]
    batches = sum(math.ceil(n / ev.batch_size) for n in passes)
    out["evaluate"] = (seeds * len(variants), batches)
    return out


def test_default_config_step_counts_follow_the_engine():
    cfg = C.load_config(None, [])
    sizes = Sizes(
        train=650, test=721, classes=8, pool=19000, ood={"a": 100, "b": 10000}, val=72, holdout=1000
    )
    got = {s.name: (s.runs, s.steps) for s in stages(cfg, sizes)}
    assert got == expected_steps(cfg, sizes)
    assert got["pretrain"] == (1, 40 * 5) and got["resample"] == (5, 743)
    assert got["finetune[none]"] == (5, 60 * 5)
    # the embedded benchmark's own validation set (val-glyphs, 1,000 items) is one more batch
    sizes.val_ood = 1000
    with_glyphs = {s.name: (s.runs, s.steps) for s in stages(cfg, sizes)}
    assert with_glyphs["evaluate"] == (got["evaluate"][0], got["evaluate"][1] + 1)


def test_preset_without_data_uses_nominal_sizes_and_the_recipe(tmp_path):
    cfg = C.load_config(
        None,
        [f"data.root={tmp_path}", "data.background=random300k:/nonexistent.npy"],
        preset="cifar10",
    )
    sizes, notes = data_sizes(cfg)
    # the authors' protocol: no validation split
    assert (sizes.train, sizes.val, sizes.test, sizes.classes) == (50_000, 0, 10_000, 10)
    assert (sizes.pool, sizes.holdout) == (300_000, 0)
    assert sizes.sources["id"] == sizes.sources["pool"] == "nominal"
    assert sizes.ood["svhn"] == 26_032 and sizes.ood["gaussian"] == 10_000
    assert any("random300k" in n for n in notes)
    got = {s.name: (s.runs, s.steps) for s in stages(cfg, sizes)}
    assert got == expected_steps(cfg, sizes)
    # pre-training: 100 epochs of ceil(50,000 / 128) = 391 steps (no drop_last); Algorithm 1
    # and finetune.recipe=authors: 50 epochs of 50,000 // 128 = 390 steps
    assert got["pretrain"] == (1, 39_100) and got["finetune[resampled]"] == (5, 19_500)
    assert got["resample"] == (5, 19_500)


def test_plan_json_has_every_stage_with_positive_estimates(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plan", *tiny, "--steps", "1", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    cfg = C.load_config(None, [a for a in tiny if "=" in a])
    sizes = Sizes(**p["sizes"])
    assert sizes.sources["id"] == "generated"
    names = [s["stage"] for s in p["stages"]]
    assert names == [
        "pretrain",
        "resample",
        *(f"finetune[{v}]" for v in cfg.run.variants),
        "evaluate",
    ]
    assert {s["stage"]: (s["runs"], s["steps"]) for s in p["stages"]} == expected_steps(cfg, sizes)
    assert all(s["seconds_per_step"] > 0 and s["seconds"] > 0 for s in p["stages"])
    assert p["total_seconds"] == sum(s["seconds"] for s in p["stages"]) > 0
    assert list(tmp_path.iterdir()) == []  # no run folder


def test_plan_preset_without_data_prints_estimates(tmp_path, capsys):
    args = ["plan", "--preset", "cifar10", *NO_DATA, "--data-root", str(tmp_path)]
    assert main([*args, "--device", "cpu", "--steps", "1", "--quiet", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["sizes"]["sources"]["pool"] == "nominal" and p["total_seconds"] > 0
    assert all(s["seconds"] > 0 for s in p["stages"])
    text = plan_text(p)
    assert "50,000 train" in text and "300,000 items" in text and "[nominal]" in text
    assert "finetune[resampled]" in text and "total" in text


def test_plan_refuses_what_it_cannot_size(tmp_path, capsys):
    root = ["--data-root", str(tmp_path), "--quiet", "--device", "cpu"]
    assert main(["plan", *root, "--id", "imagefolder:/nonexistent", *NO_DATA]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["plan", *root, "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_plan_refuses_what_the_engine_refuses_in_the_same_words(tmp_path, capsys):
    """plan sizes a run with the engine's own checks: no pool for a named ID set, a pool smaller
    than one resampling batch."""
    from bgresample.engine.benchmark import check_pool_given
    from bgresample.engine.resample import resample_steps
    from bgresample.errors import UserError

    cfg = C.load_config(None, ["data.id=cifar10:/nonexistent"])
    try:
        check_pool_given(cfg.data)
    except UserError as e:
        engine_words = str(e)
    else:
        raise AssertionError("check_pool_given accepted an ID set without a pool")
    assert main(["plan", "--id", "cifar10:/nonexistent"]) == 2
    assert engine_words in capsys.readouterr().err

    small = ["--set", "resample.batch_size=1000", "--set", "data.embedded.pool_size=600"]
    cfg = C.load_config(None, small[1::2])
    try:
        sizes = data_sizes(cfg)[0]
        resample_steps(cfg.resample, sizes.pool, sizes.train)
    except UserError as e:
        engine_words = str(e)
    else:
        raise AssertionError("resample_steps accepted a pool smaller than a batch")
    assert main(["plan", "--data-root", str(tmp_path), *small]) == 2
    assert engine_words in capsys.readouterr().err


def test_a_slow_model_on_a_cpu_is_timed_on_small_batches_and_scaled(monkeypatch):
    """Each timed call returns 1 s: the estimates show only the batch scaling."""
    cfg = C.load_config(None, ["model.name=small_cnn", "data.embedded.pool_size=600"])
    sizes = Sizes(train=650, test=721, classes=8, pool=570, ood={"gaussian": 100})
    monkeypatch.setattr(plan_module._Timer, "time", lambda self, fn, warmup=None, steps=None: 1.0)
    monkeypatch.setattr(plan_module, "CPU_SLOW_STEP", 1e9)  # fast: timed at the real batch
    fast = plan_module.plan(cfg, steps=1, sizes=sizes)
    assert fast["timed_batch_cap"] is None
    monkeypatch.setattr(plan_module, "CPU_SLOW_STEP", 0.0)  # slow: timed at 16 and scaled
    slow = plan_module.plan(cfg, steps=1, sizes=sizes)
    assert slow["timed_batch_cap"] == plan_module.CPU_TIMED_BATCH == 16
    per = {s["stage"]: s["seconds_per_step"] for s in slow["stages"]}
    ft = cfg.finetune
    assert per["pretrain"] == cfg.pretrain.batch_size / 16
    assert per["finetune[none]"] == ft.batch_size / 16
    both = ft.batch_size + ft.background_batch_size
    assert per["finetune[full]"] == both / (min(ft.batch_size, 16) + 16)
    assert {s["stage"]: s["seconds_per_step"] for s in fast["stages"]}["pretrain"] == 1.0
    assert any("timed on batches of at most 16 images" in n for n in slow["notes"])
    assert not any("timed on batches" in n for n in fast["notes"])


def test_embedded_sizes_count_the_validation_glyphs(tmp_path):
    """The plan evaluates what the run evaluates: beside the ID validation split, the pool
    hold-out and the embedded benchmark's val-glyphs; without the split, neither."""
    small = [f"data.root={tmp_path}", "data.embedded.pool_size=600"]
    sizes = data_sizes(C.load_config(None, small))[0]
    assert (sizes.val, sizes.holdout, sizes.val_ood) == (72, 30, 1000)
    sizes = data_sizes(C.load_config(None, [*small, "data.validation.id_fraction=0"]))[0]
    assert (sizes.val, sizes.val_ood) == (0, 0)
