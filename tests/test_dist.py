"""Two processes with gloo on this CPU: the same weights and metrics as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bgresample import BackgroundResampler, UniformityLoss
from bgresample.cli import main

TINY_RESAMPLE = [
    "--set",
    "resample.draws_per_item=1",
    "--set",
    "resample.batch_size=64",
    "--set",
    "resample.refresh_every=3",
    "--set",
    "resample.check_every=1",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny) -> Path:
    out = tmp_path_factory.mktemp("pre")
    assert main(["pretrain", "--out", str(out), *tiny]) == 0
    return out / "pretrain.safetensors"


def test_two_ranks_learn_the_single_process_weights(checkpoint, tiny, tmp_path, torchrun):
    single, double = tmp_path / "one", tmp_path / "two"
    base = ["resample", "--checkpoint", str(checkpoint), *tiny, *TINY_RESAMPLE]
    assert main([*base, "--out", str(single)]) == 0
    proc = torchrun([*base, "--out", str(double)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w1 = BackgroundResampler.load(single / "weights.safetensors").omega
    w2 = BackgroundResampler.load(double / "weights.safetensors").omega
    assert not torch.equal(w1, torch.zeros_like(w1))  # the weights moved
    torch.testing.assert_close(w2, w1, rtol=0, atol=1e-5)
    hist = json.loads((double / "resample_history.json").read_text())
    assert hist["draws_per_item"] >= 1


def test_distributed_evaluation_equals_single_process(checkpoint, tiny, tmp_path, torchrun):
    base = ["evaluate", "--checkpoint", str(checkpoint), *tiny]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    proc = torchrun([*base, "--out", str(tmp_path / "two")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["variants"]["model"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["variants"]["model"]
    assert one["accuracy"] == two["accuracy"]
    for name, metrics in one["ood"].items():
        for m, v in metrics.items():
            assert v["mean"] == pytest.approx(two["ood"][name][m]["mean"], abs=1e-9), (name, m)


def test_a_failing_rank_stops_the_job_with_its_message(checkpoint, tiny, tmp_path, torchrun):
    script = tmp_path / "fail_on_rank1.py"
    script.write_text(
        "import os, sys\n"
        "import bgresample.engine.resample as R\n"
        "from bgresample import cli\n"
        "if os.environ['RANK'] == '1':\n"
        "    def boom(*a, **k):\n"
        "        raise RuntimeError('injected failure on rank 1')\n"
        "    R.algorithm1_step = boom\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    args = ["resample", "--checkpoint", str(checkpoint), *tiny, *TINY_RESAMPLE]
    proc = torchrun([*args, "--out", str(tmp_path / "x")], tmp_path, script)
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stderr + proc.stdout


LIBRARY_DDP = """
import sys

import torch
import torch.distributed as dist

from bgresample import BackgroundResampler, UniformityLoss

dist.init_process_group("gloo")
rank = dist.get_rank()
table = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
resampler, loss = BackgroundResampler(200, refresh_every=4), UniformityLoss(reduction="none")
for t in range(40):
    idx = resampler.draw(16, torch.Generator().manual_seed(t))
    mine = slice(8 * rank, 8 * rank + 8)  # this rank's half of the global batch
    resampler.step(idx[mine], loss(table[idx[mine]] * (1 + t / 10)))
torch.save(resampler.weights(), f"{sys.argv[1]}/w{rank}.pt")
dist.barrier()  # both ranks done before the group is torn down
dist.destroy_process_group()
"""


def test_the_library_resampler_under_ddp_matches_one_process(tmp_path, torchrun):
    """``BackgroundResampler`` in a user's own DDP script (top-level names only): every rank
    ends with the weights one process gets from the whole batches."""
    script = tmp_path / "ddp_resampler.py"
    script.write_text(LIBRARY_DDP)
    proc = torchrun([str(tmp_path)], tmp_path, script=script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    resampler, loss = BackgroundResampler(200, refresh_every=4), UniformityLoss(reduction="none")
    for t in range(40):
        idx = resampler.draw(16, torch.Generator().manual_seed(t))
        resampler.step(idx, loss(table[idx] * (1 + t / 10)))
    w0, w1 = torch.load(tmp_path / "w0.pt"), torch.load(tmp_path / "w1.pt")
    assert torch.equal(w0, w1)  # identical on every rank
    assert w0.std() > 0  # the weights moved
    torch.testing.assert_close(w0, resampler.weights(), rtol=0, atol=1e-6)


HOPFIELD_DDP = """
import sys
from dataclasses import replace

import torch

from bgresample import dist
from bgresample.config import default_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine.finetune import finetune
from bgresample.losses import HopfieldOptions
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.selectors import SelectionContext, build_selector
from bgresample.selectors.hopfield_boosting import store_patterns

info = dist.init("cpu")
g = torch.Generator().manual_seed(0)
img = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
train, pool = LabeledImages(img(40), torch.arange(40) % 2), ImageArray(img(120))
cfg = replace(
    default_config().finetune, epochs=2, batch_size=8, background_batch_size=4, lr=0.05,
    checkpoint_every=0, loss="hopfield",
)
env = Env(Accel(torch.device("cpu")), 7, False, quiet=True)
ctx = SelectionContext(pool, train, env.accel, 7, 0.1, 4, score_batch_size=16, id_batch_size=8)
sel = build_selector("hopfield-boosting", ctx, {"hopfield-boosting": {"candidates": 2.0}})
torch.manual_seed(0)
model = create_model("small_cnn", 2)
finetune(model, train, sel, cfg, env, loss_options=HopfieldOptions(train_head=True))
store_patterns(model, ctx, cfg.epochs)
if info.is_main:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"state": state, "working": sel.working}, sys.argv[1])
dist.shutdown()  # after a barrier: rank 0's file is written before any rank exits
"""


def test_hopfield_boosting_under_ddp_equals_one_process(tmp_path, torchrun):
    """finetune.loss=hopfield with the hopfield-boosting selector and a trained head on two gloo
    ranks: the E_b loss reads the global batch's embeddings (gathered with their gradients),
    so the weights, the head and the stored patterns are those of one process."""
    script = tmp_path / "ddp_hopfield.py"
    script.write_text(HOPFIELD_DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.pt")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    proc = torchrun([str(tmp_path / "two.pt")], tmp_path, script=script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert torch.equal(a["working"], b["working"])
    assert a["state"].keys() == b["state"].keys() and "hopfield.aux_patterns" in a["state"]
    for k, v in a["state"].items():
        torch.testing.assert_close(b["state"][k], v, rtol=0, atol=1e-6, msg=k)
    from bgresample.engine.finetune import head_seed
    from bgresample.losses import add_projection_head
    from bgresample.models import create_model

    initial = add_projection_head(create_model("small_cnn", 2), seed=head_seed(7))
    moved = a["state"]["hopfield.head.0.weight"] - initial.head[0].weight
    assert moved.abs().max() > 1e-5  # the head trained (train_head)


def test_a_torchrun_rank_exits_without_the_interpreter_teardown(monkeypatch, capsys):
    """``bgresample`` under torchrun ends with ``os._exit(code)`` after flushing what it printed
    (PyTorch's DDP leaves gloo's threads running past ``destroy_process_group``); one process
    exits normally."""
    from bgresample import cli, dist

    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    def fake_main() -> int:
        print("done")
        return 3

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    monkeypatch.setattr(dist, "_INFO", dist.DistInfo(1, 2, 1))
    with pytest.raises(SystemExit):
        cli.entry()
    assert exits == [3] and capsys.readouterr().out == "done\n"
    monkeypatch.setattr(dist, "_INFO", dist.DistInfo())
    with pytest.raises(SystemExit) as e:
        cli.entry()
    assert e.value.code == 3 and exits == [3]  # sys.exit, not os._exit
