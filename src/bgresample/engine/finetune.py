"""Fine-tuning a pre-trained classifier with a chosen background set (eq. 2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from bgresample import dist
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import CropFlip
from bgresample.engine import common as E
from bgresample.engine.state import StageState
from bgresample.errors import UserError
from bgresample.losses import (
    FINETUNE_LOSSES,
    add_background_class,
    energy_margin_loss,
    extra_class_loss,
    get_outlier_loss,
)
from bgresample.progress import progress

if TYPE_CHECKING:
    from bgresample.selectors import Selector

log = logging.getLogger("bgresample")


def background_objective(
    name: str, options: dict[str, float] | None = None
) -> Callable[[Tensor, Tensor], Tensor]:
    """The background term of fine-tuning, ``fn(logits_id, logits_bg) -> scalar``, by
    ``finetune.loss``: ``uniform`` (eq. 4) or ``max_entropy`` on the background logits,
    ``energy`` (Liu et al.'s margins on ID and background energies; ``options`` may set
    ``m_in`` and ``m_out``) or ``extra_class`` (cross entropy to the background class K)."""
    if name == "energy":
        margins = options or {}
        return lambda li, lb: energy_margin_loss(li, lb, **margins)
    if name == "extra_class":
        return lambda li, lb: extra_class_loss(lb)
    if name not in FINETUNE_LOSSES:
        raise UserError(f"unknown finetune.loss {name!r}; valid: {', '.join(FINETUNE_LOSSES)}")
    fn = get_outlier_loss(name)
    return lambda li, lb: fn(lb)


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
    selector: Selector | None = None,
    loss_options: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Minimise CE + alpha * L_out (eq. 2) with ID and background batches in one forward pass.

    The background batches come from ``selector`` when given (it chooses, and may refresh, the
    items; see :mod:`bgresample.selectors`), else uniformly from ``subset``, the pool indices to
    train on (``None`` or empty, and no selector: no background, CE only). L_out is
    ``finetune.loss`` (:func:`background_objective`, with ``loss_options``); ``extra_class``
    first gives the model a (K+1)-th output (IDs keep targets 0..K-1). The ID batches and their
    augmentation depend only on ``seed`` and the step, so every variant fine-tuned with the same
    seed sees the same ID batches for the same number of steps. A resumable state (with the
    selector's) is written to ``state_path`` every ``checkpoint_every`` epochs.
    """
    if cfg["loss"] == "extra_class":
        add_background_class(model, train.num_classes)
    objective = background_objective(cfg["loss"], loss_options)
    net = accel.model(model)
    bs, bbs = int(cfg["batch_size"]), int(cfg["background_batch_size"])
    draw = _background_draws(model, pool, subset, selector, bbs, seed)
    spe = E.steps_per_epoch(len(train), bs)
    total = int(cfg["epochs"]) * spe
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    sched = E.schedule(opt, cfg["schedule"], total, spe)
    alpha = float(cfg["alpha"])
    state = StageState(state_path)
    parts: dict[str, Any] = {"model": model, "opt": opt, "sched": sched}
    if selector is not None:
        parts["selector"] = selector
    start, _ = state.load(parts) if resume else (0, {})
    every = int(cfg.get("checkpoint_every", 0) or 0) * spe
    batches = E.EpochBatches(len(train), bs, seed, 1)
    model.train(not cfg["freeze_bn"])
    bar = progress(range(start, total), desc, "step", quiet or not dist.info().is_main)
    l_in = l_out = torch.zeros(())
    bsl = E.local_slice(bbs)
    # Background batches read ahead where they do not depend on training (no selector).
    pool_batches = None
    if draw is not None:
        keys = (draw(s)[bsl] for s in range(start, total))
        pool_batches = accel.batches(pool, keys, ahead=selector is None)
    for step in bar:
        E.seed_step(seed, step)
        x_id, y = E.id_batch(train, batches, step, seed, flip, accel)
        x_bg = None
        if pool_batches is not None:
            baug = CropFlip.draw(bbs, E.generator(seed, 4, step), flip=True).shard(bsl)
            x_bg = accel.ready(next(pool_batches), baug, pool.normalized)
        with accel.autocast():
            logits_id, logits_bg = E.joint_forward(net, x_id, x_bg)
        l_in = E.ce(logits_id, y)
        l_out = (
            objective(logits_id.float(), logits_bg.float())
            if logits_bg is not None
            else torch.zeros_like(l_in)
        )
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
    info = {"steps": total, "final_loss_in": l_in.item(), "final_loss_out": l_out.item()}
    if selector is not None:
        info["selection"] = selector.summary()
    return info


def _background_draws(
    model: nn.Module,
    pool: ImageSource | None,
    subset: Tensor | None,
    selector: Selector | None,
    batch_size: int,
    seed: int,
) -> Callable[[int], Tensor] | None:
    """``step -> global background batch`` (pool indices), or ``None`` for no background."""
    if selector is not None:
        if pool is None or selector.ctx.batch_size != batch_size:
            raise UserError(
                f"the selector needs the pool and background batches of {batch_size} items"
            )
        return lambda step: selector.background(model, step)
    if pool is None or subset is None or len(subset) == 0:
        return None
    return lambda step: subset[E.uniform_batch(len(subset), batch_size, seed, 3, step)]
