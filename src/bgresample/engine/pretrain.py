"""Pre-training on ID data alone (the "None" baseline of the paper and the start of Algorithm 1)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample.checkpoint import save_model
from bgresample.data.base import LabeledImages
from bgresample.data.transforms import prepare
from bgresample.engine import common as E
from bgresample.progress import progress

log = logging.getLogger("bgresample")


def pretrain(
    model: nn.Module,
    train: LabeledImages,
    cfg: dict[str, Any],
    *,
    device: torch.device,
    seed: int,
    flip: bool,
    channels_last: bool = False,
    out: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """SGD with momentum on cross-entropy (eq. 3) with the paper's augmentation.

    Writes ``out/pretrain.safetensors`` at the end and every ``checkpoint_every`` epochs.
    Returns the per-epoch history (loss, accuracy).
    """
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    bs = int(cfg["batch_size"])
    spe = E.steps_per_epoch(len(train), bs)
    epochs = int(cfg["epochs"])
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    sched = E.schedule(opt, cfg["schedule"], epochs * spe, spe)
    order, aug = E.generator(seed, 1), E.generator(seed, 2)
    batches = E.epoch_batches(len(train), bs, order)
    ckpt = out / "pretrain.safetensors" if out is not None else None
    last_good = None
    history = []
    model.train()
    bar = progress(range(epochs), "pretrain", "ep", quiet)
    step = 0
    for epoch in bar:
        tot_loss, tot_correct, tot_n = 0.0, 0, 0
        for _ in range(spe):
            idx = next(batches)
            x = E.to_model_input(
                prepare(train.data[idx], train=True, generator=aug, flip=flip),
                device,
                channels_last,
            )
            y = train.targets[idx].to(device, non_blocking=True)
            logits = model(x)
            loss = E.ce(logits, y)
            E.check_finite(loss, "pretrain", step, last_good)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot_loss += loss.item() * len(y)
            tot_correct += int((logits.argmax(1) == y).sum())
            tot_n += len(y)
        rec = {
            "epoch": epoch + 1,
            "loss": tot_loss / tot_n,
            "train_acc": 100.0 * tot_correct / tot_n,
        }
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['train_acc']:.1f}")
        every = int(cfg.get("checkpoint_every", 0) or 0)
        if ckpt is not None and (epoch + 1 == epochs or (every and (epoch + 1) % every == 0)):
            save_model(ckpt, model, {"stage": "pretrain", "epoch": epoch + 1, "seed": seed})
            last_good = str(ckpt)
    log.info(
        "pretrain: %d epochs, final loss %.4f, train acc %.2f%%",
        epochs,
        history[-1]["loss"] if history else float("nan"),
        history[-1]["train_acc"] if history else float("nan"),
    )
    return {"history": history}
