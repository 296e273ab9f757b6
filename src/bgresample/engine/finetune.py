"""Fine-tuning a pre-trained classifier with the background data a selector chooses (eq. 2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bgresample import dist, scalars
from bgresample.checkpoint import StageState
from bgresample.config import FinetuneConfig
from bgresample.data.base import LabeledImages
from bgresample.errors import UserError
from bgresample.losses import BACKGROUND_LOSSES, add_background_class
from bgresample.losses.hopfield import ProjectedClassifier
from bgresample.progress import progress
from bgresample.rng import Stream, generator, seed_step
from bgresample.runtime.batches import (
    EpochBatches,
    crop_flip,
    id_batch,
    local_slice,
    steps_per_epoch,
)
from bgresample.runtime.env import Env
from bgresample.runtime.forward import ce, check_finite, joint_forward, projected_forward
from bgresample.runtime.optim import schedule, sgd, sgd_step
from bgresample.selectors import Selector

log = logging.getLogger("bgresample")

Objective = Callable[..., Tensor]


def background_objective(name: str, options: Any = None) -> Objective:
    """The background term of fine-tuning, ``fn(logits_id, logits_bg) -> scalar``, by
    ``finetune.loss``: ``uniform`` (eq. 4) or ``max_entropy`` on the background logits,
    ``energy`` (Liu et al.'s margins on ID and background energies) or ``extra_class`` (cross
    entropy to the background class K); ``fn(logits_id, logits_bg, emb_id, emb_bg)`` for a
    loss on projected embeddings (``hopfield``: the mean E_b with the batch's embeddings as the
    memories, gathered over the ranks under DDP); ``options``: the loss's ``LossSpec.options``
    (None: their defaults)."""
    spec = BACKGROUND_LOSSES.get(name)
    if spec is None:
        raise UserError(f"unknown finetune.loss {name!r}; valid: {', '.join(BACKGROUND_LOSSES)}")
    loss = spec.build(options)
    if spec.embeddings:
        return lambda li, lb, ei, eb: loss(
            ei, eb, dist.all_gather_grad(ei), dist.all_gather_grad(eb)
        )
    if spec.uses_id:
        return lambda li, lb: loss(lb, li)
    return lambda li, lb: loss(lb)


def head_seed(seed: int) -> int:
    """The seed of the Hopfield projection head of a run with ``seed`` (every variant of the
    seed starts from the same head)."""
    return generator(seed, Stream.PROJECTION_HEAD).initial_seed()


def finetune(
    model: nn.Module,
    train: LabeledImages,
    selector: Selector | None,
    cfg: FinetuneConfig,
    env: Env,
    *,
    loss_options: Any = None,
    state_path: Path | None = None,
    resume: bool = False,
    variant: str | None = None,
) -> dict[str, Any]:
    """Minimise CE + alpha * L_out (eq. 2) with ID and background batches in one forward pass.

    The background batches come from ``selector`` (it chooses, and may refresh, the items; see
    :mod:`bgresample.selectors`); ``None`` trains on ID data alone (CE only). L_out is
    ``cfg.loss`` (:func:`background_objective`, with ``loss_options``, the loss's
    ``LossSpec.options``); ``extra_class`` first gives the model a
    (K+1)-th output (IDs keep targets 0..K-1). The ID batches and their augmentation depend only
    on the seed and the step, so every variant fine-tuned with the same seed sees the same ID
    batches for the same number of steps. A loss on projected embeddings (``hopfield``) first
    gives the model its projection head (``model.hopfield``, initialised from the seed:
    :func:`head_seed`; not without background, where the loss is never computed), and each
    step passes the features of the joint batch through ``fc`` and the head in one forward.
    A resumable state (with the selector's) is written to ``state_path`` every
    ``checkpoint_every`` epochs. ``variant`` names the background in
    the progress bar and the TensorBoard tags ``finetune/seed<seed>[/<variant>]/...``: CE
    (``l_in``), background loss (``l_out``), their total (``loss``) and the learning rate
    (``lr``) of about 100 steps and the last.
    """
    spec = BACKGROUND_LOSSES[cfg.loss]
    if spec.extra_class:
        try:
            add_background_class(model, train.num_classes)
        except ValueError as e:
            raise UserError(f"finetune.loss=extra_class: {e}") from None
    projected = spec.embeddings and selector is not None
    if projected:
        try:
            spec.build(loss_options).add_head(model, head_seed(env.seed))
        except ValueError as e:
            raise UserError(f"finetune.loss={cfg.loss}: {e}") from None
    objective = background_objective(cfg.loss, loss_options)
    forward = projected_forward if projected else joint_forward
    desc = f"finetune[{variant}]" if variant else "finetune"
    tag = f"finetune/seed{env.seed}" + (f"/{variant}" if variant else "")
    accel = env.accel
    net = accel.model(ProjectedClassifier(model) if projected else model)
    spe = steps_per_epoch(len(train), cfg.batch_size)
    total = cfg.epochs * spe
    record_every = max(total // 100, 1)
    opt = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = schedule(opt, cfg.schedule, total, spe)
    state = StageState(state_path)
    parts: dict[str, Any] = {"model": model, "opt": opt, "sched": sched}
    if selector is not None:
        parts["selector"] = selector
    start, _ = state.load(parts) if resume else (0, {})
    every = cfg.checkpoint_every * spe
    batches = EpochBatches(len(train), cfg.batch_size, env.seed)
    model.train(not cfg.freeze_bn)
    bar = progress(range(start, total), desc, "step", env.quiet or not dist.info().is_main)
    bbs = cfg.background_batch_size
    background = _background(model, selector, bbs, range(start, total), env)
    l_in = l_out = torch.zeros(())
    for step in bar:
        seed_step(env.seed, step)
        x_id, y = id_batch(train, batches, step, env.flip, accel)
        x_bg = None if background is None else background(step)
        with accel.autocast():
            outputs = forward(net, x_id, x_bg)
        logits_id, logits_bg = outputs[:2]
        l_in = ce(logits_id, y)
        l_out = (
            objective(*(t.float() for t in outputs))
            if logits_bg is not None
            else torch.zeros_like(l_in)
        )
        loss = l_in + cfg.alpha * l_out
        check_finite(loss, desc, step, state.path)
        if step % record_every == 0 or step == total - 1:
            values = {"l_in": l_in.item(), "l_out": l_out.item(), "loss": loss.item()}
            scalars.record(tag, {**values, "lr": opt.param_groups[0]["lr"]}, step)
        sgd_step(opt, loss, sched)
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


def _background(
    model: nn.Module, selector: Selector | None, batch_size: int, steps: range, env: Env
) -> Callable[[int], Tensor] | None:
    """A function ``step -> this rank's background batch`` ready for the model, to be called
    once per step in order, or None without a selector. Batches of a static selector are read
    ahead (decoded in worker processes for pools of image files); the others are read when the
    step asks."""
    if selector is None:
        return None
    if selector.ctx.batch_size != batch_size:
        raise UserError(
            f"the selector draws batches of {selector.ctx.batch_size} items, fine-tuning "
            f"needs {batch_size}"
        )
    pool, accel, sl = selector.ctx.pool, env.accel, local_slice(batch_size)
    keys = (selector.background(model, s)[sl] for s in steps)
    raw = accel.batches(pool, keys, ahead=selector.static)

    def ready(step: int) -> Tensor:
        aug = crop_flip(batch_size, env.seed, Stream.BACKGROUND_AUG, step, flip=env.bg_flip).shard(
            sl
        )
        return accel.ready(next(raw), aug, pool.normalized)

    return ready
