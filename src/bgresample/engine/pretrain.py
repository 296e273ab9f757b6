"""Pre-training on ID data alone (the start of Algorithm 1 and of every fine-tuned variant)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample import dist, scalars
from bgresample.checkpoint import save_model
from bgresample.data.base import LabeledImages
from bgresample.engine import common as E
from bgresample.engine.state import StageState
from bgresample.progress import progress

log = logging.getLogger("bgresample")


def pretrain(
    model: nn.Module,
    train: LabeledImages,
    cfg: dict[str, Any],
    *,
    accel: E.Accel,
    seed: int,
    flip: bool,
    out: Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SGD with momentum on cross-entropy (eq. 3) with the paper's augmentation.

    Writes ``out/pretrain.safetensors`` at the end, and a resumable state every
    ``checkpoint_every`` epochs. Returns the per-epoch history (loss, train accuracy).
    """
    net = accel.model(model)
    bs = int(cfg["batch_size"])
    spe = E.steps_per_epoch(len(train), bs)
    epochs = int(cfg["epochs"])
    total = epochs * spe
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    sched = E.schedule(opt, cfg["schedule"], total, spe)
    state = StageState(out / "pretrain.state.safetensors" if out is not None else None)
    parts = {"model": model, "opt": opt, "sched": sched}
    start, extra = state.load(parts) if resume else (0, {})
    history: list[dict[str, float]] = extra.get("history", [])
    batches = E.EpochBatches(len(train), bs, seed, 1)
    every = int(cfg.get("checkpoint_every", 0) or 0)
    model.train()
    bar = progress(range(start, total), "pretrain", "step", quiet or not dist.info().is_main)
    tot = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count over the epoch
    for step in bar:
        E.seed_step(seed, step)
        x, y = E.id_batch(train, batches, step, seed, flip, accel)
        with accel.autocast():
            logits = net(x)
        loss = E.ce(logits, y)
        E.check_finite(loss, "pretrain", step, state.path)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        tot += torch.stack(
            [
                loss.detach().double().cpu() * len(y),
                (logits.argmax(1) == y).sum().cpu(),
                torch.tensor(len(y)),
            ]
        ).double()
        if (step + 1) % spe == 0:
            epoch = (step + 1) // spe
            rec = {
                "epoch": epoch,
                "loss": float(tot[0] / tot[2]),
                "train_acc": float(100 * tot[1] / tot[2]),
            }
            history.append(rec)
            scalars.scalar(f"pretrain/seed{seed}/loss", rec["loss"], epoch)
            scalars.scalar(f"pretrain/seed{seed}/train_acc", rec["train_acc"], epoch)
            tot.zero_()
            bar.set_postfix(
                refresh=False, ep=epoch, loss=f"{rec['loss']:.3f}", acc=f"{rec['train_acc']:.1f}"
            )
            if every and epoch % every == 0 and epoch < epochs:
                state.save(step + 1, parts, {"history": history})
    if out is not None and dist.info().is_main:
        info = {"stage": "pretrain", "seed": seed, **(meta or {})}
        save_model(out / "pretrain.safetensors", model, info)
        state.remove()
    if history:
        log.info(
            "pretrain: %d epochs, final loss %.4f, train acc %.2f%%",
            epochs,
            history[-1]["loss"],
            history[-1]["train_acc"],
        )
    return {"history": history}
