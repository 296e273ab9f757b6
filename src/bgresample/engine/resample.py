"""Adversarial background resampling: Algorithm 1 (paper, Section B; eqs. 10-12)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample import dist, scalars
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import CropFlip
from bgresample.engine import common as E
from bgresample.engine.state import StageState
from bgresample.errors import UserError
from bgresample.losses import get_outlier_loss
from bgresample.progress import progress
from bgresample.resampling import BackgroundWeights, WeightedSampler

log = logging.getLogger("bgresample")


def algorithm1_step(
    net: nn.Module,
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
    accel: E.Accel | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Algorithm 1; returns the detached (l_in, l_out) at theta^(t).

    ``x_id``, ``y_id`` and ``x_bg`` are this rank's shards; ``bidx`` is the GLOBAL background
    batch (pool indices, on the weights' device), of which ``x_bg`` is this rank's share. ID and
    background go through the model in one forward pass. The classifier descends
    l_in + alpha * l_out with l_out = mean_b r_b L_uni,b (eqs. 10, 12); omega ascends the same
    l_out with its gradient computed analytically from the detached per-example L_uni values of
    the whole global batch (gathered from all ranks), so the network is differentiated once and
    every rank applies the same weight update.
    """
    sl = E.local_slice(len(bidx))
    with accel.autocast() if accel is not None else contextlib.nullcontext():
        logits_id, logits_bg = E.joint_forward(net, x_id, x_bg)
    l_in = E.ce(logits_id, y_id)
    per_example = loss_out(logits_bg.float(), reduction="none")
    with torch.no_grad():
        r = weights.ratios(bidx[sl])
    l_out = (r * per_example).mean()
    loss = l_in + alpha * l_out
    E.check_finite(loss, "resample", step, None)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses = dist.all_gather_cat(per_example.detach().to(weights.omega.device))
    # Gradient of l_out w.r.t. omega and opt_w's SGD-with-momentum ascent in one pass over omega,
    # equal to: opt_w.zero_grad(); omega.grad = weights.grad_omega(bidx, losses); opt_w.step().
    weights.ascent_step(bidx, losses, opt_w, compile=accel is not None and accel.compile_weights)
    return l_in.detach(), l_out.detach()


def resample(
    model: nn.Module,
    train: LabeledImages,
    pool: ImageSource,
    cfg: dict[str, Any],
    *,
    accel: E.Accel,
    seed: int,
    flip: bool,
    state_path: Path | None = None,
    resume: bool = False,
    trace: int = 8,
    quiet: bool = False,
) -> tuple[BackgroundWeights, dict[str, Any]]:
    """Learn one weight per pool item by the min-max game of Algorithm 1.

    Each step draws an ID batch uniformly and a background batch with p_i (eq. 11), the same
    global batches on every rank, and calls :func:`algorithm1_step`. The sampler is refreshed
    from the current weights every ``refresh_every`` steps (default: once per pool epoch, N
    draws), and the resumable state is saved at each refresh to ``state_path``. Returns the
    weights and a history (weight statistics over time, weight trajectories, draws per item).
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
    net = accel.model(model)
    weights = BackgroundWeights(n_pool, eps=float(cfg["eps"])).to(accel.device)
    opt = E.sgd(model, float(cfg["lr"]), float(cfg["momentum"]), float(cfg["weight_decay"]))
    opt_w = torch.optim.SGD(
        weights.parameters(),
        lr=float(cfg["lr_w"]),
        momentum=float(cfg["momentum_w"]),
        maximize=True,
    )
    alpha = float(cfg["alpha"])
    loss_out = get_outlier_loss(cfg["loss"])
    draws = torch.zeros(n_pool, dtype=torch.int32)
    traced = torch.linspace(0, n_pool - 1, min(trace, n_pool)).long()
    history: dict[str, Any] = {"step": [], "w_min": [], "w_median": [], "w_max": [], "ess": []}
    history["traced_items"] = traced.tolist()
    history["traced_weights"] = []
    state = StageState(state_path)
    parts = {"model": model, "opt": opt, "weights": weights, "opt_w": opt_w, "draws": _Box(draws)}
    start, extra = state.load(parts) if resume else (0, {})
    history.update(extra.get("history", {}))
    batches = E.EpochBatches(len(train), n, seed, 1)
    model.train(not cfg["freeze_bn"])
    main = dist.info().is_main
    bar = progress(range(start, steps), "resample", "step", quiet or not main)
    log_every = max(steps // 100, 1)
    check_every = int(cfg.get("check_every") or 0)
    sampler = WeightedSampler(weights.masses())
    sl = E.local_slice(n)

    def draw(step: int) -> torch.Tensor:  # the global background batch of a step (eq. 11)
        return sampler.draw(n, E.generator(seed, 3, step)).cpu()

    for step in bar:
        if step % refresh == 0 or step == start:
            if step % refresh == 0:
                if step > start:
                    state.save(step, parts, {"history": history})
                # Recompute the sums from omega here, in an uninterrupted run as after a resume
                # (the fused step's running sums can differ in the last bits): resumes stay exact.
                weights.invalidate()
                sampler.refresh(weights.masses())
            # The sampler is fixed until the next refresh: this rank's batches up to there can
            # be read ahead (decoded in worker processes for pools of image files).
            until = min((step // refresh + 1) * refresh, steps)
            pool_batches = accel.batches(pool, (draw(s)[sl] for s in range(step, until)))
        E.seed_step(seed, step)
        x_id, y_id = E.id_batch(train, batches, step, seed, flip, accel)
        bidx = draw(step)
        baug = CropFlip.draw(n, E.generator(seed, 4, step), flip=True).shard(sl)
        draws.index_add_(0, bidx, torch.ones(n, dtype=torch.int32))
        l_in, l_out = algorithm1_step(
            net,
            weights,
            opt,
            opt_w,
            x_id,
            y_id,
            accel.ready(next(pool_batches), baug, pool.normalized),
            bidx.to(accel.device),
            alpha,
            loss_out,
            step,
            accel,
        )
        if check_every and step % check_every == 0:
            _check_identical(weights, step)
        if step % log_every == 0 or step == steps - 1:
            st = weights.stats()
            history["step"].append(step)
            for k in ("w_min", "w_median", "w_max", "ess"):
                history[k].append(st[k])
                scalars.scalar(f"resample/seed{seed}/{k}", st[k], step)
            scalars.scalar(f"resample/seed{seed}/l_in", l_in.item(), step)
            scalars.scalar(f"resample/seed{seed}/l_out", l_out.item(), step)
            history["traced_weights"].append(weights.weights()[traced.to(accel.device)].tolist())
            bar.set_postfix(
                refresh=False,
                l_in=f"{l_in.item():.3f}",
                l_out=f"{l_out.item():.3f}",
                w=f"{st['w_min']:.2g}/{st['w_median']:.2g}/{st['w_max']:.2g}",
                ess=f"{st['ess'] / n_pool:.2f}N",
            )
    _check_identical(weights, steps)
    state.remove()
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


class _Box:
    """A tensor counter saved and restored with the stage state."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.t.copy_(state["t"])


def _check_identical(weights: BackgroundWeights, step: int) -> None:
    """The background weights must be bit-identical on every rank."""
    if not dist.all_equal(weights.omega.detach()):
        raise RuntimeError(f"resample: background weights differ between ranks at step {step}")
