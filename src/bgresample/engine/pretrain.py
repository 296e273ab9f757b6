"""Pre-training on ID data alone (the start of Algorithm 1 and of every fine-tuned variant)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample import dist, scalars
from bgresample.checkpoint import StageState, save_model
from bgresample.config import PretrainConfig
from bgresample.data.base import LabeledImages
from bgresample.progress import progress
from bgresample.rng import seed_step
from bgresample.runtime.batches import EpochBatches, id_batch, steps_per_epoch
from bgresample.runtime.env import Env
from bgresample.runtime.forward import ce, check_finite
from bgresample.runtime.optim import schedule, sgd, sgd_step

log = logging.getLogger("bgresample")


def pretrain(
    model: nn.Module,
    train: LabeledImages,
    cfg: PretrainConfig,
    env: Env,
    *,
    out: Path | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
) -> list[dict[str, float]]:
    """SGD with momentum on cross-entropy (eq. 3) with the paper's augmentation.

    Writes ``out/pretrain.safetensors`` (with ``meta``) at the end, and a resumable state every
    ``checkpoint_every`` epochs. Returns the per-epoch history (loss, train accuracy).
    """
    net = env.accel.model(model)
    spe = steps_per_epoch(len(train), cfg.batch_size, cfg.drop_last)
    total = cfg.epochs * spe
    opt = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = schedule(opt, cfg.schedule, total, spe)
    state = StageState(out / "pretrain.state.safetensors" if out is not None else None)
    parts = {"model": model, "opt": opt, "sched": sched}
    start, extra = state.load(parts) if resume else (0, {})
    history: list[dict[str, float]] = extra.get("history", [])
    batches = EpochBatches(len(train), cfg.batch_size, env.seed, cfg.drop_last)
    model.train()
    bar = progress(range(start, total), "pretrain", "step", env.quiet or not dist.info().is_main)
    tot = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count over the epoch
    for step in bar:
        seed_step(env.seed, step)
        x, y = id_batch(train, batches, step, env.flip, env.accel)
        with env.accel.autocast():
            logits = net(x)
        loss = ce(logits, y)
        check_finite(loss, "pretrain", step, state.path)
        sgd_step(opt, loss, sched)
        tot += torch.stack(
            [
                loss.detach().double().cpu() * len(y),
                (logits.argmax(1) == y).sum().cpu(),
                torch.tensor(len(y)),
            ]
        ).double()
        if (step + 1) % spe == 0:
            rec = _epoch_record((step + 1) // spe, tot, env.seed)
            history.append(rec)
            tot.zero_()
            bar.set_postfix(
                refresh=False,
                ep=rec["epoch"],
                loss=f"{rec['loss']:.3f}",
                acc=f"{rec['train_acc']:.1f}",
            )
            if (
                cfg.checkpoint_every
                and rec["epoch"] % cfg.checkpoint_every == 0
                and step + 1 < total
            ):
                state.save(step + 1, parts, {"history": history})
    if out is not None and dist.info().is_main:
        save_model(
            out / "pretrain.safetensors",
            model,
            {"stage": "pretrain", "seed": env.seed, **(meta or {})},
        )
        state.remove()
    if history:
        last = history[-1]
        log.info(
            "pretrain: %d epochs, final loss %.4f, train acc %.2f%%",
            cfg.epochs,
            last["loss"],
            last["train_acc"],
        )
    return history


def _epoch_record(epoch: int, tot: torch.Tensor, seed: int) -> dict[str, float]:
    """The epoch's mean loss and train accuracy (also as TensorBoard scalars)."""
    rec = {
        "epoch": epoch,
        "loss": float(tot[0] / tot[2]),
        "train_acc": float(100 * tot[1] / tot[2]),
    }
    scalars.record(
        f"pretrain/seed{seed}",
        {"loss": rec["loss"], "train_acc": rec["train_acc"]},
        epoch,
        axis="epoch",
    )
    return rec
