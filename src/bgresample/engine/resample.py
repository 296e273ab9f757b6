"""Adversarial background resampling: Algorithm 1 (paper, Section B; eqs. 10-12), the
experiment's loop around :class:`bgresample.BackgroundResampler`."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bgresample import dist, scalars
from bgresample.checkpoint import StageState
from bgresample.config import ResampleConfig
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.errors import UserError
from bgresample.losses import BACKGROUND_LOSSES
from bgresample.progress import progress
from bgresample.resampling import BackgroundResampler
from bgresample.rng import Stream, generator, seed_step, trace_generator
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import (
    EpochBatches,
    crop_flip,
    id_batch,
    local_slice,
    steps_per_epoch,
)
from bgresample.runtime.env import Env
from bgresample.runtime.forward import ce, check_finite, joint_forward
from bgresample.runtime.optim import schedule, sgd, sgd_step

log = logging.getLogger("bgresample")


def resample_steps(cfg: ResampleConfig, n_pool: int, id_size: int) -> int:
    """Steps of Algorithm 1: ``cfg.epochs`` ID epochs of ``floor(id_size / batch_size)`` steps
    when set (the authors' code), else each of the ``n_pool`` pool items drawn
    ``draws_per_item`` times in expectation, in batches of ``cfg.batch_size``."""
    if n_pool < cfg.batch_size:
        raise UserError(
            f"the background pool has {n_pool} items, fewer than one batch ({cfg.batch_size}); "
            "use a larger pool or --set resample.batch_size=..."
        )
    if cfg.epochs:
        return cfg.epochs * steps_per_epoch(id_size, cfg.batch_size)
    return math.ceil(cfg.draws_per_item * n_pool / cfg.batch_size)


def algorithm1_step(
    net: nn.Module,
    resampler: BackgroundResampler,
    opt: torch.optim.Optimizer,
    x_id: torch.Tensor,
    y_id: torch.Tensor,
    x_bg: torch.Tensor,
    idx: torch.Tensor,
    alpha: float,
    outlier: nn.Module,
    accel: Accel | None = None,
    step: int = 0,
    weight_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Algorithm 1 on this rank's ID batch and background batch ``x_bg`` (pool
    items ``idx``); returns the detached (l_in, l_out) at theta^(t).

    ID and background go through the model in one forward pass. The classifier descends
    l_in + alpha * l_out with l_out = mean_b r_b L_uni,b (eqs. 10, 12); omega then ascends
    ``weight_scale * l_out`` (1: the paper's l_out; alpha: the authors' code, which ascends
    the coefficient-scaled loss) from the detached per-example losses of every rank (no second
    backward pass).
    """
    with accel.autocast() if accel is not None else contextlib.nullcontext():
        logits_id, logits_bg = joint_forward(net, x_id, x_bg)
    l_in = ce(logits_id, y_id)
    per_example = outlier(logits_bg.float())
    l_out = resampler.weighted_loss(idx, per_example)
    loss = l_in + alpha * l_out
    check_finite(loss, "resample", step, None)
    sgd_step(opt, loss)
    resampler.step(idx, weight_scale * per_example)
    return l_in.detach(), l_out.detach()


def refresh_period(cfg: ResampleConfig, id_size: int) -> int | None:
    """Steps between sampler refreshes: ``refresh_every`` when set, else one ID epoch
    (|D_in| / n steps, the authors' code) or None (one pool epoch, N / n steps)."""
    if cfg.refresh_every:
        return cfg.refresh_every
    return steps_per_epoch(id_size, cfg.batch_size) if cfg.refresh == "id-epoch" else None


def resample(
    model: nn.Module,
    train: LabeledImages,
    pool: ImageSource,
    cfg: ResampleConfig,
    env: Env,
    *,
    state_path: Path | None = None,
    resume: bool = False,
) -> tuple[BackgroundResampler, dict[str, Any]]:
    """Learn one weight per pool item by the min-max game of Algorithm 1.

    Each step draws an ID batch uniformly and a background batch with p_i (eq. 11), the same
    global batches on every rank, and calls :func:`algorithm1_step`. The sampler is refreshed
    from the current weights by the cadence of :func:`refresh_period`; the resumable state is
    saved to ``state_path`` at refreshes, at most once per pool epoch unless ``refresh_every``
    asks for more. Returns the resampler and a history
    (weight statistics over time, weight trajectories, draws per item).
    """
    n_pool, n = len(pool), cfg.batch_size
    steps = resample_steps(cfg, n_pool, len(train))
    accel = env.accel
    resampler = BackgroundResampler(
        n_pool,
        eps=cfg.eps,
        lr=cfg.lr_w,
        momentum=cfg.momentum_w,
        refresh_every=refresh_period(cfg, len(train)),
        device=accel.device,
        compile=accel.compile_weights,
    )
    net = accel.model(model)
    opt = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = schedule(opt, cfg.schedule, steps, steps_per_epoch(len(train), n))
    outlier = BACKGROUND_LOSSES[cfg.loss].module(reduction="none")
    weight_scale = cfg.alpha if cfg.weight_loss == "scaled" else 1.0
    save_gap = resampler.period(n) if cfg.refresh_every else math.ceil(n_pool / n)
    trace = _Trace(resampler, env.seed)
    state = StageState(state_path)
    parts = {"model": model, "opt": opt, "sched": sched, "resampler": resampler, "draws": trace}
    start, extra = state.load(parts) if resume else (0, {})
    last_save = start
    trace.history.update(extra.get("history", {}))
    batches = EpochBatches(len(train), n, env.seed)
    model.train(not cfg.freeze_bn)
    bar = progress(range(start, steps), "resample", "step", env.quiet or not dist.info().is_main)
    sl = local_slice(n)
    window: dict[int, torch.Tensor] = {}
    for step in bar:
        if resampler.refresh_due(n) or step == start:
            if resampler.refresh_due(n):
                resampler.refresh()
                if step > start and step - last_save >= save_gap:
                    state.save(step, parts, {"history": trace.history})
                    last_save = step
            # The sampler is fixed until the next refresh: the global background batches up to
            # there are drawn now, and this rank's share read ahead (decoded in worker
            # processes for pools of image files).
            until = min(resampler.next_refresh(n), steps)
            window = {
                s: resampler.draw(n, generator(env.seed, Stream.BACKGROUND, s)).cpu()
                for s in range(step, until)
            }
            pool_batches = accel.batches(pool, [window[s][sl] for s in range(step, until)])
        seed_step(env.seed, step)
        x_id, y_id = id_batch(train, batches, step, env.flip, accel)
        bidx = window.pop(step)
        baug = crop_flip(n, env.seed, Stream.BACKGROUND_AUG, step, flip=env.bg_flip).shard(sl)
        trace.count(bidx)
        x_bg = accel.ready(next(pool_batches), baug, pool.normalized)
        l_in, l_out = algorithm1_step(
            net,
            resampler,
            opt,
            x_id,
            y_id,
            x_bg,
            bidx[sl],
            cfg.alpha,
            outlier,
            accel,
            step,
            weight_scale,
        )
        sched.step()
        if cfg.check_every and step % cfg.check_every == 0:
            _check_identical(resampler, step)
        if step % max(steps // 100, 1) == 0 or step == steps - 1:
            bar.set_postfix(refresh=False, **trace.record(step, l_in, l_out))
    _check_identical(resampler, steps)
    state.remove()
    history = trace.finish(steps, n)
    log.info(
        "resample: %d steps, %.2f draws per item, %.1f%% never drawn, ESS %.0f of %d",
        steps,
        history["draws_per_item"],
        100 * history["never_drawn"],
        history["ess"][-1],
        n_pool,
    )
    return resampler, history


class _Trace:
    """What Algorithm 1 records for the report: weight statistics over time, the weights of a few
    items, and how often each item was drawn (saved and restored with the stage state)."""

    def __init__(self, resampler: BackgroundResampler, seed: int, items: int = 256) -> None:
        n = len(resampler)
        self.resampler, self.seed = resampler, seed
        self.draws = torch.zeros(n, dtype=torch.int32)
        # a random sample of items, whose top, median and bottom the report plots (a generator
        # of its own: the training streams are untouched)
        g = trace_generator(seed)
        if n <= 4 * items:
            self.traced = torch.randperm(n, generator=g)[: min(items, n)].sort().values
        else:  # O(items) for pools of any size; a rare repeat is dropped
            self.traced = torch.randint(n, (items,), generator=g).unique()
        self.history: dict[str, Any] = {
            "step": [],
            "w_min": [],
            "w_median": [],
            "w_max": [],
            "ess": [],
            "traced_items": self.traced.tolist(),
            "traced_weights": [],
        }

    def count(self, bidx: torch.Tensor) -> None:
        self.draws.index_add_(0, bidx, torch.ones(len(bidx), dtype=torch.int32))

    def record(self, step: int, l_in: torch.Tensor, l_out: torch.Tensor) -> dict[str, str]:
        """Log the weight statistics at ``step``; returns the progress bar's fields."""
        st = self.resampler.stats()
        self.history["step"].append(step)
        keys = ("w_min", "w_median", "w_max", "ess")
        for k in keys:
            self.history[k].append(st[k])
        values = {**{k: st[k] for k in keys}, "l_in": l_in.item(), "l_out": l_out.item()}
        scalars.record(f"resample/seed{self.seed}", values, step)
        w = self.resampler.weights()
        self.history["traced_weights"].append(w[self.traced.to(w.device)].tolist())
        return {
            "l_in": f"{l_in.item():.3f}",
            "l_out": f"{l_out.item():.3f}",
            "w": f"{st['w_min']:.2g}/{st['w_median']:.2g}/{st['w_max']:.2g}",
            "ess": f"{st['ess'] / len(self.draws):.2f}N",
        }

    def finish(self, steps: int, batch_size: int) -> dict[str, Any]:
        """The history with the run's totals; ``draws`` is the per-item draw count."""
        self.history["steps"] = steps
        self.history["draws_per_item"] = steps * batch_size / len(self.draws)
        self.history["never_drawn"] = float((self.draws == 0).float().mean())
        self.history["draws"] = self.draws
        return self.history

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"t": self.draws}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.draws.copy_(state["t"])


def _check_identical(resampler: BackgroundResampler, step: int) -> None:
    """The background weights must be bit-identical on every rank."""
    if not resampler.synchronized():
        raise RuntimeError(f"resample: background weights differ between ranks at step {step}")
