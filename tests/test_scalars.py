"""Training curves and final metrics: a run's TensorBoard events hold every stage's scalars
(fine-tuning per variant and the final metrics per seed included), a command that records
nothing leaves no event file, and ``log.wandb`` logs the same scalars to wandb when it is
installed (offline unless WANDB_MODE says otherwise) or says in one line how to install it."""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bgresample import scalars
from bgresample.cli import main
from bgresample.config import load_config

VARIANTS = ("none", "resampled")
STAGE_TAGS = {
    "resample": ("w_min", "w_median", "w_max", "ess", "l_in", "l_out"),
    "finetune": ("l_in", "l_out", "loss", "lr"),
    "final": ("acc", "avg_fpr95", "avg_auroc", "avg_aupr"),
}


class FakeRun:
    """What a wandb run was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def define_metric(self, name: str, **kwargs: Any) -> None:
        self.calls.append(("define_metric", name, kwargs))

    def log(self, data: dict[str, float]) -> None:
        self.calls.append(("log", data))

    def finish(self) -> None:
        self.calls.append(("finish",))


def fake_wandb(monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None) -> Any:
    """A ``wandb`` module in ``sys.modules`` recording ``init``'s arguments and its runs."""
    module: Any = types.ModuleType("wandb")
    module.inits, module.runs = [], []

    def init(**kwargs: Any) -> FakeRun:
        module.inits.append(kwargs)
        if fail is not None:
            raise fail
        module.runs.append(FakeRun())
        return module.runs[-1]

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def read_events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


class Warnings(logging.Handler):
    """The bgresample logger's warnings (the CLI turns its propagation off)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def warnings():
    handler = Warnings()
    logger = logging.getLogger("bgresample")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def args(tiny) -> list[str]:
    return [*tiny, "--set", f"run.variants={','.join(VARIANTS)}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, args) -> tuple[Path, list[FakeRun]]:
    """A tiny ``run --set log.wandb=true`` with a fake wandb: its folder and wandb runs."""
    pytest.importorskip("torch.utils.tensorboard")
    out = tmp_path_factory.mktemp("scalars") / "run"
    with pytest.MonkeyPatch.context() as mp:
        wandb = fake_wandb(mp)
        assert main(["run", "--out", str(out), *args, "--set", "log.wandb=true"]) == 0
    return out, wandb.runs


def test_a_run_records_every_stage_and_the_final_metrics_per_seed(run):
    out, _ = run
    events = read_events(out / "tensorboard")
    seeds = (0, 1)
    expected = {"pretrain/seed0/loss", "pretrain/seed0/train_acc"}
    expected |= {f"resample/seed{s}/{t}" for s in seeds for t in STAGE_TAGS["resample"]}
    expected |= {
        f"finetune/seed{s}/{v}/{t}" for s in seeds for v in VARIANTS for t in STAGE_TAGS["finetune"]
    }
    expected |= {f"final/{v}/{t}" for v in VARIANTS for t in STAGE_TAGS["final"]}
    assert set(events) == expected
    for seed in seeds:
        saved = json.loads((out / f"seed_{seed}" / "results.json").read_text())["variants"]
        for v in VARIANTS:
            res, prefix = saved[v], f"finetune/seed{seed}/{v}"
            total = res["finetune"]["steps"]
            curve = events[f"{prefix}/l_in"]
            assert curve[0][0] == 0 and curve[-1][0] == total - 1
            assert curve[-1][1] == pytest.approx(res["finetune"]["final_loss_in"], rel=1e-6)
            assert events[f"{prefix}/lr"][0][1] == pytest.approx(3e-3)  # finetune.lr
            final = {t: dict(events[f"final/{v}/{t}"])[seed] for t in STAGE_TAGS["final"]}
            assert final["acc"] == pytest.approx(res["accuracy"], rel=1e-6)
            for m in ("fpr95", "auroc", "aupr"):
                assert final[f"avg_{m}"] == pytest.approx(res["average"][m]["mean"], rel=1e-6)
        assert {value for _, value in events[f"finetune/seed{seed}/none/l_out"]} == {0.0}


def test_wandb_gets_the_same_scalars_as_tensorboard(run):
    out, runs = run
    (wandb_run,) = runs
    hidden = {c[1] for c in wandb_run.calls if c[0] == "define_metric" and c[2].get("hidden")}
    logged: dict[str, list[tuple[int, float]]] = {}
    for call in wandb_run.calls:
        if call[0] == "log":
            data = dict(call[1])
            (axis,) = set(data) & hidden  # each prefix's own x axis
            step = data.pop(axis)
            for tag, value in data.items():
                logged.setdefault(tag, []).append((step, value))
    events = read_events(out / "tensorboard")
    assert set(logged) == set(events)
    for tag, points in events.items():
        assert [s for s, _ in logged[tag]] == [s for s, _ in points], tag
        assert [v for _, v in logged[tag]] == pytest.approx([v for _, v in points], rel=1e-6)
    assert wandb_run.calls[-1] == ("finish",)


def test_commands_that_record_nothing_leave_no_event_file(run, args, tmp_path):
    out, _ = run
    ev, sel = tmp_path / "ev", tmp_path / "sel"
    ckpt = out / "seed_0" / "resampled.safetensors"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(ev), *args]) == 0
    weights = out / "seed_0" / "weights.safetensors"
    assert main(["select", "--weights", str(weights), "--out", str(sel), *args]) == 0
    for folder in (ev, sel):
        assert (folder / "log.txt").is_file()
        assert not (folder / "tensorboard").exists()
        assert not list(folder.rglob("events.out.tfevents*"))


def test_nothing_recorded_starts_no_writer(tmp_path, monkeypatch):
    wandb = fake_wandb(monkeypatch)
    scalars.configure(tmp_path, load_config(sets=["log.wandb=true"]))
    scalars.close()
    assert wandb.inits == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("user_env", [{}, {"WANDB_MODE": "online", "WANDB_PROJECT": "mine"}])
def test_wandb_is_offline_unless_the_user_says_otherwise(tmp_path, monkeypatch, user_env):
    for name in ("WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in user_env.items():
        monkeypatch.setenv(name, value)
    wandb = fake_wandb(monkeypatch)
    scalars.configure(tmp_path, load_config(sets=["log.wandb=true"]))
    scalars.record("pretrain/seed0", {"loss": 2.0, "train_acc": 20.0}, 1, axis="epoch")
    scalars.record("pretrain/seed0", {"loss": 1.5, "train_acc": 40.0}, 2, axis="epoch")
    scalars.record("final/resampled", {"acc": 90.0}, 3, axis="seed")
    scalars.close()
    (init,) = wandb.inits
    assert init["dir"] == str(tmp_path) and init["config"]["log"] == {"wandb": True}
    # None: wandb reads the user's WANDB_MODE / WANDB_PROJECT itself
    assert init["mode"] == (None if user_env else "offline")
    assert init["project"] == (None if user_env else "bgresample")
    assert wandb.runs[0].calls == [
        ("define_metric", "pretrain/seed0/epoch", {"hidden": True}),
        ("define_metric", "pretrain/seed0/*", {"step_metric": "pretrain/seed0/epoch"}),
        (
            "log",
            {
                "pretrain/seed0/loss": 2.0,
                "pretrain/seed0/train_acc": 20.0,
                "pretrain/seed0/epoch": 1,
            },
        ),
        (
            "log",
            {
                "pretrain/seed0/loss": 1.5,
                "pretrain/seed0/train_acc": 40.0,
                "pretrain/seed0/epoch": 2,
            },
        ),
        ("define_metric", "final/resampled/seed", {"hidden": True}),
        ("define_metric", "final/resampled/*", {"step_metric": "final/resampled/seed"}),
        ("log", {"final/resampled/acc": 90.0, "final/resampled/seed": 3}),
        ("finish",),
    ]


def test_without_wandb_one_line_says_how_to_install_it(tmp_path, monkeypatch, warnings):
    pytest.importorskip("torch.utils.tensorboard")
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails as when not installed
    scalars.configure(tmp_path, load_config(sets=["log.wandb=true"]))
    scalars.record("finetune/seed0/none", {"l_in": 1.0}, 0)
    scalars.close()
    assert len(warnings) == 1 and "pip install wandb" in warnings[0]
    assert read_events(tmp_path / "tensorboard") == {"finetune/seed0/none/l_in": [(0, 1.0)]}
    assert not (tmp_path / "wandb").exists()


def test_a_wandb_that_does_not_start_leaves_tensorboard_going(tmp_path, monkeypatch, warnings):
    pytest.importorskip("torch.utils.tensorboard")
    wandb = fake_wandb(monkeypatch, fail=RuntimeError("api_key not configured (no-tty)"))
    scalars.configure(tmp_path, load_config(sets=["log.wandb=true"]))
    scalars.record("pretrain/seed0", {"loss": 2.0}, 1)
    scalars.record("pretrain/seed0", {"loss": 1.0}, 2)
    scalars.close()
    assert len(wandb.inits) == 1  # not retried at every value
    assert len(warnings) == 1 and "api_key not configured" in warnings[0]
    assert read_events(tmp_path / "tensorboard") == {"pretrain/seed0/loss": [(1, 2.0), (2, 1.0)]}
