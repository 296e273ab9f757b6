"""Fine-tuning a pre-trained classifier with a chosen background set (eq. 2)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample import dist
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import CropFlip
from bgresample.engine import common as E
from bgresample.engine.state import StageState
from bgresample.losses import get_outlier_loss
from bgresample.progress import progress

log = logging.getLogger("bgresample")


def finetune(
    model: nn.Module,
    train: LabeledImages,
    pool: ImageSource | None,
    subset: torch.Tensor | None,
    cfg: dict[str, Any],
    *,
    accel: E.Accel,
    seed: int,
    flip: bool,
    state_path: Path | None = None,
    resume: bool = False,
    desc: str = "finetune",
    quiet: bool = False,
) -> dict[str, Any]:
    """Minimise CE + alpha * L_uni (eq. 2) with ID and background batches in one forward pass.

    ``subset`` holds the pool indices to train on (``None`` or empty: no background, CE only);
    background batches are drawn uniformly from it. The ID batches and their augmentation depend
    only on ``seed`` and the step, so every variant fine-tuned with the same seed sees the same
    ID batches for the same number of steps. A resumable state is written to ``state_path``
    every ``checkpoint_every`` epochs.
    """
    net = accel.model(model)
    use_bg = pool is not None and subset is not None and len(subset) > 0
    bs, bbs = int(cfg["batch_size"]), int(cfg["background_batch_size"])
    spe = E.steps_per_epoch(len(train), bs)
    total = int(cfg["epochs"]) * spe
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    sched = E.schedule(opt, cfg["schedule"], total, spe)
    alpha = float(cfg["alpha"])
    loss_out = get_outlier_loss(cfg["loss"])
    state = StageState(state_path)
    parts = {"model": model, "opt": opt, "sched": sched}
    start, _ = state.load(parts) if resume else (0, {})
    every = int(cfg.get("checkpoint_every", 0) or 0) * spe
    batches = E.EpochBatches(len(train), bs, seed, 1)
    model.train(not cfg["freeze_bn"])
    bar = progress(range(start, total), desc, "step", quiet or not dist.info().is_main)
    l_in = l_out = torch.zeros(())
    for step in bar:
        E.seed_step(seed, step)
        gidx = batches.at(step)
        sl = E.local_slice(len(gidx))
        aug = CropFlip.draw(len(gidx), E.generator(seed, 2, step), flip=flip).shard(sl)
        idx = gidx[sl]
        x_id = accel.batch(train, idx, aug)
        x_bg = None
        if use_bg:
            pick = E.uniform_batch(len(subset), bbs, seed, 3, step)
            bsl = E.local_slice(bbs)
            baug = CropFlip.draw(bbs, E.generator(seed, 4, step), flip=True).shard(bsl)
            x_bg = accel.batch(pool, subset[pick[bsl]], baug)
        y = train.targets[idx.to(train.targets.device)].to(accel.device, non_blocking=True)
        with accel.autocast():
            logits_id, logits_bg = E.joint_forward(net, x_id, x_bg)
        l_in = E.ce(logits_id, y)
        l_out = loss_out(logits_bg.float()) if logits_bg is not None else torch.zeros_like(l_in)
        loss = l_in + alpha * l_out
        E.check_finite(loss, desc, step, str(state.path) if state.path else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(refresh=False, l_in=f"{l_in.item():.3f}", l_out=f"{l_out.item():.3f}")
        if every and (step + 1) % every == 0 and step + 1 < total:
            state.save(step + 1, parts)
    state.remove()
    model.eval()
    return {"steps": total, "final_loss_in": l_in.item(), "final_loss_out": l_out.item()}
