"""Adversarial background resampling: Algorithm 1 (paper, Section B; eqs. 10-12)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.transforms import prepare
from bgresample.engine import common as E
from bgresample.errors import UserError
from bgresample.losses import get_outlier_loss
from bgresample.progress import progress
from bgresample.resampling import BackgroundWeights, WeightedSampler

log = logging.getLogger("bgresample")


def algorithm1_step(
    model: nn.Module,
    weights: BackgroundWeights,
    opt: torch.optim.Optimizer,
    opt_w: torch.optim.Optimizer,
    x_id: torch.Tensor,
    y_id: torch.Tensor,
    x_bg: torch.Tensor,
    bidx: torch.Tensor,
    alpha: float,
    loss_out: Callable[..., torch.Tensor],
    step: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Algorithm 1; returns the detached (l_in, l_out) at theta^(t).

    ID and background batches go through the model in one forward pass. The classifier takes
    a descent step on l_in + alpha * l_out, where l_out = mean_b r_b L_uni,b (eqs. 10, 12);
    omega takes an ascent step on the same l_out, whose gradient is computed analytically from
    the detached per-example L_uni values, so the network is differentiated only once.
    """
    logits_id, logits_bg = E.joint_forward(model, x_id, x_bg)
    l_in = E.ce(logits_id, y_id)
    per_example = loss_out(logits_bg, reduction="none")
    with torch.no_grad():
        r = weights.ratios(bidx)
    l_out = (r * per_example).mean()
    loss = l_in + alpha * l_out
    E.check_finite(loss, "resample", step, None)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    opt_w.zero_grad(set_to_none=True)
    weights.omega.grad = weights.grad_omega(bidx, per_example.detach())
    opt_w.step()
    return l_in.detach(), l_out.detach()


def resample(
    model: nn.Module,
    train: LabeledImages,
    pool: ImageArray,
    cfg: dict[str, Any],
    *,
    device: torch.device,
    seed: int,
    flip: bool,
    channels_last: bool = False,
    trace: int = 8,
    quiet: bool = False,
) -> tuple[BackgroundWeights, dict[str, Any]]:
    """Learn one weight per pool item by the min-max game of Algorithm 1.

    Each step: an ID batch (uniform) and a background batch drawn with p_i (eq. 11) go through
    the classifier in ONE forward pass; l_out = mean_b r_b L_uni,b with r from eq. 12. The
    classifier descends l_in + alpha * l_out; omega ascends l_out with the gradient computed
    analytically from the detached per-example L_uni values (no second backward pass).
    Returns the weights and a history (weight statistics over time, draws per item).
    """
    n_pool = len(pool)
    n = int(cfg["batch_size"])
    if n_pool < n:
        raise UserError(
            f"the background pool has {n_pool} items, fewer than one batch ({n}); "
            "use a larger pool or --set resample.batch_size=..."
        )
    steps = math.ceil(float(cfg["draws_per_item"]) * n_pool / n)
    refresh = int(cfg.get("refresh_every") or 0) or max(n_pool // n, 1)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    weights = BackgroundWeights(n_pool, eps=float(cfg["eps"])).to(device)
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    opt_w = torch.optim.SGD(
        weights.parameters(),
        lr=float(cfg["lr_w"]),
        momentum=float(cfg["momentum_w"]),
        maximize=True,
    )
    alpha = float(cfg["alpha"])
    loss_out = get_outlier_loss(cfg["loss"])
    id_batches = E.epoch_batches(len(train), n, E.generator(seed, 1))
    id_aug, bg_gen = E.generator(seed, 2), E.generator(seed, 4)
    sampler = WeightedSampler(weights.probs().cpu())
    draws = torch.zeros(n_pool, dtype=torch.int32)
    traced = torch.linspace(0, n_pool - 1, min(trace, n_pool)).long()
    history: dict[str, Any] = {"step": [], "w_min": [], "w_median": [], "w_max": [], "ess": []}
    history["traced_items"] = traced.tolist()
    history["traced_weights"] = []
    model.train(not cfg["freeze_bn"])
    bar = progress(range(steps), "resample", "step", quiet)
    log_every = max(steps // 100, 1)
    for step in bar:
        if step and step % refresh == 0:
            sampler.refresh(weights.probs().cpu())
        idx = next(id_batches)
        bidx = sampler.draw(n, bg_gen)
        draws.index_add_(0, bidx, torch.ones(n, dtype=torch.int32))
        x_id = E.to_model_input(
            prepare(train.data[idx], train=True, generator=id_aug, flip=flip), device, channels_last
        )
        x_bg = E.to_model_input(
            prepare(pool.get_batch(bidx), train=True, generator=bg_gen, flip=True),
            device,
            channels_last,
        )
        l_in, l_out = algorithm1_step(
            model,
            weights,
            opt,
            opt_w,
            x_id,
            train.targets[idx].to(device, non_blocking=True),
            x_bg,
            bidx.to(device),
            alpha,
            loss_out,
            step,
        )
        if step % log_every == 0 or step == steps - 1:
            st = weights.stats()
            history["step"].append(step)
            for k in ("w_min", "w_median", "w_max", "ess"):
                history[k].append(st[k])
            history["traced_weights"].append(weights.weights()[traced.to(device)].tolist())
            bar.set_postfix(
                l_in=f"{l_in.item():.3f}",
                l_out=f"{l_out.item():.3f}",
                w=f"{st['w_min']:.2g}/{st['w_median']:.2g}/{st['w_max']:.2g}",
                ess=f"{st['ess'] / n_pool:.2f}N",
            )
    history["steps"] = steps
    history["draws_per_item"] = steps * n / n_pool
    history["never_drawn"] = float((draws == 0).float().mean())
    history["draws"] = draws
    log.info(
        "resample: %d steps, %.2f draws per item, %.1f%% never drawn, ESS %.0f of %d",
        steps,
        history["draws_per_item"],
        100 * history["never_drawn"],
        history["ess"][-1],
        n_pool,
    )
    return weights, history
