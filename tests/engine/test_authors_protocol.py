"""The presets are the authors' code (issue 24): every row of their protocol is a config value, and
the keys behind them (Algorithm 1 in ID epochs with a theta schedule, pre-training without
drop_last, background passes in shuffled order, ddof 0, flip off for digits) do what they say."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from bgresample.cli import main
from bgresample.config import default_config, load_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine import resample as resample_mod
from bgresample.engine.benchmark import resolve_flip
from bgresample.engine.resample import resample, resample_steps
from bgresample.metrics import evaluate_protocol, ood_metrics
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import EpochBatches, ShuffledPasses
from bgresample.runtime.env import Env
from bgresample.selectors import SelectionContext, build_selector

PRESETS = ["cifar10", "cifar100", "tiny-imagenet"]

#: The authors' value of every row of issue 24's table, as config keys.
AUTHORS = {
    ("evaluate", "fpr95"): "authors",
    ("evaluate", "std_ddof"): 0,
    ("data", "flip"): "auto",
    ("pretrain", "epochs"): 100,
    ("pretrain", "lr"): 0.1,
    ("pretrain", "batch_size"): 128,
    ("pretrain", "schedule"): "step30",
    ("pretrain", "drop_last"): False,
    ("resample", "epochs"): 50,
    ("resample", "lr"): 0.1,
    ("resample", "schedule"): "step30",
    ("resample", "weight_loss"): "scaled",
    ("resample", "refresh"): "id-epoch",
    ("finetune", "epochs"): 50,
    ("finetune", "lr"): 0.1,
    ("finetune", "schedule"): "step30",
    ("finetune", "background_order"): "shuffle",
    ("model", "name"): "wrn40_4_authors",
    ("accel", "amp"): False,
}


@pytest.mark.parametrize("preset", PRESETS)
def test_bgresample_config_shows_the_authors_value_of_every_row(preset, capsys):
    assert main(["config", "--preset", preset]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    for (section, key), value in AUTHORS.items():
        assert cfg[section][key] == value, f"{section}.{key}"
    assert cfg["data"]["validation"]["id_fraction"] == 0
    assert cfg["data"]["validation"]["pool_fraction"] == 0
    assert "lsun" in cfg["evaluate"]["ood"]  # torchvision's LSUN test split, as they loaded it


def test_the_paper_text_is_one_switch_away():
    cfg = load_config(None, ["resample.lr=0.001", "resample.schedule=constant"], preset="cifar10")
    assert (cfg.resample.lr, cfg.resample.schedule) == (0.001, "constant")


def test_flip_auto_is_off_for_digit_id_data_only():
    assert resolve_flip("auto", None) is False  # the embedded digits
    assert resolve_flip("auto", "svhn") is False
    assert resolve_flip("auto", "cifar10") is True
    assert resolve_flip(True, "svhn") is True and resolve_flip(False, "cifar10") is False


def test_algorithm1_length_in_id_epochs():
    rs = replace(default_config().resample, epochs=50, batch_size=128)
    assert resample_steps(rs, 300_000, 50_000) == 50 * 390  # their drop_last ID loader
    assert resample_steps(replace(rs, epochs=0), 300_000, 50_000) == 11_719  # 5 draws per item


def _tiny_resample(monkeypatch, **overrides):
    gen = torch.Generator().manual_seed(0)
    train = LabeledImages(
        torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 4, (96,), generator=gen),
    )
    pool = ImageArray(torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=gen))
    schedules = []

    def spy(*args, **kwargs):
        schedules.append(resample_mod_schedule(*args, **kwargs))
        return schedules[-1]

    resample_mod_schedule = resample_mod.schedule
    monkeypatch.setattr(resample_mod, "schedule", spy)
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4)
    cfg = replace(default_config().resample, batch_size=32, lr=0.1, **overrides)
    _, history = resample(model, train, pool, cfg, Env(Accel(torch.device("cpu")), 0, False, True))
    return schedules[0], history


def test_theta_schedule_decays_the_classifier_lr_over_algorithm1(monkeypatch):
    # 4 ID epochs of 96 // 32 = 3 steps; `step`: x0.1 at 50% and again at 75% of the 12 steps
    sched, history = _tiny_resample(monkeypatch, epochs=4, schedule="step")
    assert sched.last_epoch == 12
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.01)
    sched, _ = _tiny_resample(monkeypatch, epochs=4, schedule="constant")
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_pretraining_without_drop_last_sees_every_item_each_epoch():
    batches = EpochBatches(100, 32, seed=0, drop_last=False)
    assert batches.per_epoch == 4
    epoch = [batches.at(s) for s in range(4)]
    assert [len(b) for b in epoch] == [32, 32, 32, 4]
    assert sorted(torch.cat(epoch).tolist()) == list(range(100))
    assert EpochBatches(100, 32, seed=0).per_epoch == 3  # the default drops the last 4


def test_shuffled_passes_cover_the_subset_without_replacement():
    passes = ShuffledPasses(batch_size=32, seed=0)
    first = torch.cat([passes.at(100, 0, s) for s in range(3)])
    assert len(set(first.tolist())) == 96  # one pass: 3 batches, no repeats, 4 items dropped
    second = torch.cat([passes.at(100, 0, s) for s in range(3, 6)])
    assert len(set(second.tolist())) == 96 and not torch.equal(first, second)
    # a function of the step: a fresh object (a resumed run) gives the same batch
    assert torch.equal(ShuffledPasses(32, 0).at(100, 0, 4), passes.at(100, 0, 4))
    small = ShuffledPasses(batch_size=32, seed=0).at(10, 0, 0)
    assert len(small) == 32 and set(small.tolist()) == set(range(10))


def test_fine_tuning_background_order_shuffle_visits_the_subset_in_passes():
    gen = torch.Generator().manual_seed(0)
    pool = ImageArray(torch.randint(0, 256, (640, 3, 32, 32), dtype=torch.uint8, generator=gen))
    train = LabeledImages(pool.data[:64], torch.zeros(64, dtype=torch.long))

    def batches(order: str) -> list[list[int]]:
        ctx = SelectionContext(
            pool=pool,
            train=train,
            accel=Accel(torch.device("cpu")),
            seed=0,
            gamma=0.1,
            batch_size=16,
            order=order,
        )
        selector = build_selector("random", ctx)
        return [selector.background(None, s).tolist() for s in range(4)]  # 64 of 64 items

    shuffled = sum(batches("shuffle"), [])
    assert len(set(shuffled)) == 64  # one pass over the 10% subset
    drawn = sum(batches("replacement"), [])
    assert len(set(drawn)) < 64  # uniform with replacement repeats items
    assert set(drawn) <= set(shuffled)  # the same subset either way


def test_std_over_the_draws_with_ddof_0_is_numpys_default():
    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(size=500), rng.normal(1, size=2000)
    out0 = evaluate_protocol(id_s, {"a": ood_s}, ratio=0.2, repeats=5, ddof=0)
    out1 = evaluate_protocol(id_s, {"a": ood_s}, ratio=0.2, repeats=5)
    from bgresample.metrics import protocol_indices

    draws = protocol_indices(500, {"a": 2000}, 0.2, 5, 0)["a"]
    aurocs = [ood_metrics(id_s, ood_s[d])["auroc"] for d in draws]
    assert out0["ood"]["a"]["auroc"]["std"] == pytest.approx(np.std(aurocs))
    assert out1["ood"]["a"]["auroc"]["std"] == pytest.approx(np.std(aurocs, ddof=1))
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        evaluate_protocol(id_s, {"a": ood_s}, ddof=2)
