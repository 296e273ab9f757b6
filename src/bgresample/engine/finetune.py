"""Fine-tuning a pre-trained classifier with a chosen background set (eq. 2)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.transforms import prepare
from bgresample.engine import common as E
from bgresample.losses import get_outlier_loss
from bgresample.progress import progress

log = logging.getLogger("bgresample")


def finetune(
    model: nn.Module,
    train: LabeledImages,
    pool: ImageArray | None,
    subset: torch.Tensor | None,
    cfg: dict[str, Any],
    *,
    device: torch.device,
    seed: int,
    flip: bool,
    channels_last: bool = False,
    desc: str = "finetune",
    quiet: bool = False,
) -> dict[str, Any]:
    """Minimise CE + alpha * L_uni (eq. 2) with ID and background batches in one forward pass.

    ``subset`` holds the pool indices to train on (``None`` or empty: no background, CE only).
    The ID batches and their augmentation depend only on ``seed``, so every variant fine-tuned
    with the same seed sees the same ID batches for the same number of steps.
    """
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    use_bg = pool is not None and subset is not None and len(subset) > 0
    bs, bbs = int(cfg["batch_size"]), int(cfg["background_batch_size"])
    spe = E.steps_per_epoch(len(train), bs)
    total = int(cfg["epochs"]) * spe
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    sched = E.schedule(opt, cfg["schedule"], total, spe)
    alpha = float(cfg["alpha"])
    loss_out = get_outlier_loss(cfg["loss"])
    id_batches = E.epoch_batches(len(train), bs, E.generator(seed, 1))
    id_aug = E.generator(seed, 2)
    if use_bg:
        bg_gen = E.generator(seed, 3)
        bg_batches = E.epoch_batches(len(subset), bbs, bg_gen)
    model.train(not cfg["freeze_bn"])
    hist = {"loss_in": 0.0, "loss_out": 0.0}
    bar = progress(range(total), desc, "step", quiet)
    for step in bar:
        idx = next(id_batches)
        x_id = prepare(train.data[idx], train=True, generator=id_aug, flip=flip)
        x_bg = None
        if use_bg:
            bidx = subset[next(bg_batches)]
            x_bg = prepare(pool.get_batch(bidx), train=True, generator=bg_gen, flip=True)
            x_bg = E.to_model_input(x_bg, device, channels_last)
        x_id = E.to_model_input(x_id, device, channels_last)
        logits_id, logits_bg = E.joint_forward(model, x_id, x_bg)
        l_in = E.ce(logits_id, train.targets[idx].to(device, non_blocking=True))
        l_out = loss_out(logits_bg) if logits_bg is not None else torch.zeros((), device=device)
        loss = l_in + alpha * l_out
        E.check_finite(loss, desc, step, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist["loss_in"], hist["loss_out"] = l_in.item(), l_out.item()
        if step % 10 == 0:
            bar.set_postfix(l_in=f"{hist['loss_in']:.3f}", l_out=f"{hist['loss_out']:.3f}")
    model.eval()
    return {"steps": total, "final_loss_in": hist["loss_in"], "final_loss_out": hist["loss_out"]}
