"""Adversarial background resampling (Algorithm 1) as an object any training loop can drive.

:class:`BackgroundResampler` owns one weight per pool item (w_i = softplus(omega_i), eqs. 10-12),
the sampler that draws background batches from them (eq. 11), the weight optimiser (SGD ascent
with momentum, lr 100 in Table 1) and the sampler's refresh cadence. A loop that already
trains a classifier with an outlier loss needs four calls per step::

    idx = resampler.draw(batch_size, generator)   # pool indices drawn with p_i (eq. 11)
    per_item = uniformity(model(pool[idx]))       # the loop's own loss, reduction="none"
    loss = ce + alpha * resampler.weighted_loss(idx, per_item)  # mean r_i L_i (eq. 12)
    loss.backward(); opt.step()
    resampler.step(idx, per_item)                 # omega ascends l_out, no second backward

Under DDP, pass each rank's own indices and losses: :meth:`step` gathers them from every rank,
so every rank applies the same update and the weights stay identical.

The step's scale: the ascent moves a drawn item's omega by a step of order lr * L / B per
draw (B the batch), so Table 1's lr = 100 suits per-item losses of order 1, as eq. 4's uniformity
loss. With losses of order 100 (e.g. the energy margins, ~400) the weights collapse onto a few
items within tens of steps (50 steps of batch 128: effective sample size 152 of 4,000).
``step_scale="mean"`` divides each batch's losses by their mean magnitude, which makes the step
independent of the loss's scale (``tests/resampling/test_step_scale.py``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as tdist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from bgresample.files import atomic_write_bytes
from bgresample.resampling.sampler import WeightedSampler
from bgresample.resampling.selection import select
from bgresample.resampling.weights import BackgroundWeights

FORMAT = "bgresample.BackgroundResampler"
#: Files of bgresample 0.1 (omega and eps only), still read by :meth:`BackgroundResampler.load`.
_OLD_FORMAT = "bgresample.BackgroundWeights"

StepScale = Literal["none", "mean"]
STEP_SCALES: tuple[str, ...] = ("none", "mean")

#: lr * mean |L| of a batch above which ``step_scale="none"`` warns (once): the weights collapse
#: near 2e4 (lr 100, losses ~200: see the module docstring); 5e3 leaves a margin.
_LOUD_STEP = 5e3


def _world() -> int:
    """World size of the default process group (1 when torch.distributed is not in use)."""
    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_world_size()
    return 1


def _gather(t: Tensor) -> Tensor:
    """``t`` from every rank, concatenated in rank order (``t`` itself without DDP)."""
    if _world() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(_world())]
    tdist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _number(name: str, value: Any, low: float, strict: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (value > low if strict else value >= low) or value != value:
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def _momentum(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not 0.0 <= value < 1.0:
        raise ValueError(
            f"momentum must be a number in [0, 1) (SGD momentum of the weight ascent; the "
            f"authors' 0.9), got {value!r}"
        )
    return float(value)


def _step_scale(value: Any) -> str:
    if value not in STEP_SCALES:
        raise ValueError(
            f"step_scale must be one of {STEP_SCALES} ('none': ascend l_out as is; 'mean': "
            f"divide each batch's losses by their mean magnitude), got {value!r}"
        )
    return value


class BackgroundResampler:
    """Learned background weights and the sampler they drive (Algorithm 1, eqs. 10-12).

    Args:
        num_items: N, the size of the background pool (any size: the sampler is not limited to
            torch.multinomial's 2^24 categories).
        eps: sampler coefficient in [0, 1] (eqs. 11-12): draws with p_i proportional to w_i^eps
            and reweights by r_i proportional to w_i^(1-eps). 0: uniform draws, full reweighting;
            1: importance sampling. Table 1: 0.5.
        lr: step size of the weight ascent (eta_w; Table 1: 100, for per-item losses of
            order 1: see ``step_scale``).
        momentum: SGD momentum of the weight ascent, in [0, 1) (the authors' code: 0.9).
        weight_decay: L2 decay of omega (0 in the paper).
        refresh_every: steps between rebuilds of the sampler from the current weights; None is
            once per pool epoch, max(N // batch_size, 1) steps with the batch size of the first
            :meth:`draw`.
        device: where the weights and the sampler live (default: the CPU).
        compile: run the weight step as one ``torch.compile``-d function (for GPUs).
        step_scale: what :meth:`step` ascends. "none" (default): l_out of the losses as
            given, the paper's step, whose size grows with the losses' magnitude (the module
            docstring). "mean": the losses divided by their batch's mean magnitude
            (mean_b |L_b|, over every rank), so that lr = 100 suits losses of any scale; the
            classifier's objective (:meth:`weighted_loss`) is unchanged.

    eps = 1 draws by importance with r_i = 1, so l_out does not depend on w: the weights never
    move (a warning says so).
    """

    def __init__(
        self,
        num_items: int,
        eps: float = 0.5,
        lr: float = 100.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        refresh_every: int | None = None,
        device: str | torch.device | None = None,
        compile: bool = False,
        step_scale: StepScale = "none",
    ) -> None:
        num_items = _positive_int("num_items", num_items)
        self._weights = BackgroundWeights(num_items, eps=eps).to(device or "cpu")
        if self.eps == 1.0:
            warnings.warn(
                "eps=1 draws by importance with r_i = 1: l_out does not depend on the weights, "
                "so step() never moves them; use eps in [0, 1) (the paper: 0.5)",
                UserWarning,
                stacklevel=2,
            )
        self.optimizer = torch.optim.SGD(
            self._weights.parameters(),
            lr=_number("lr", lr, 0.0, strict=True),
            momentum=_momentum(momentum),
            weight_decay=_number("weight_decay", weight_decay, 0.0),
            maximize=True,
        )
        self.refresh_every = (
            None if refresh_every is None else _positive_int("refresh_every", refresh_every)
        )
        self.compile = bool(compile)
        self.step_scale = _step_scale(step_scale)
        self._warned_loud = False
        self.steps = 0
        self._sampler: WeightedSampler | None = None
        self._refreshed_at = 0

    # -- what it holds -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._weights)

    @property
    def eps(self) -> float:
        return self._weights.eps

    @property
    def device(self) -> torch.device:
        return self._weights.omega.device

    @property
    def omega(self) -> Tensor:
        """The unconstrained parameters, w = softplus(omega) (read-only use)."""
        return self._weights.omega.detach()

    def weights(self) -> Tensor:
        """w = softplus(omega) per pool item, float32, detached, on :attr:`device`."""
        return self._weights.weights()

    def probs(self) -> Tensor:
        """Eq. 11: the draw probabilities p_i = w_i^eps / sum_j w_j^eps (float64)."""
        return self._weights.probs()

    def ratios(self, indices: Tensor) -> Tensor:
        """Eq. 12: r_i = (sum_j w_j^eps / sum_j w_j) w_i^(1-eps) of pool ``indices`` (float32,
        on :attr:`device`); E_{i~p}[r_i L_i] = sum_i w_i L_i / sum_j w_j for every eps."""
        return self._weights.ratios(self._on_device(indices))

    def stats(self) -> dict[str, float]:
        """min / median / max of w and the effective sample size of p."""
        return self._weights.stats()

    def to(self, device: str | torch.device) -> BackgroundResampler:
        """Move weights, momentum and sampler to ``device`` (in place); returns self."""
        self._weights.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    state[key] = value.to(device)
        if self._sampler is not None:
            self._sampler = WeightedSampler(self._sampler_masses().to(device))
        return self

    # -- one step of Algorithm 1 ---------------------------------------------------------------

    def period(self, batch_size: int) -> int:
        """Steps between sampler refreshes for background batches of ``batch_size``."""
        return self.refresh_every or max(len(self) // batch_size, 1)

    def refresh_due(self, batch_size: int) -> bool:
        """Whether the next :meth:`draw` of ``batch_size`` items rebuilds the sampler first."""
        return self._sampler is None or self.steps - self._refreshed_at >= self.period(batch_size)

    def next_refresh(self, batch_size: int) -> int:
        """The step count at which the sampler is next rebuilt (draws before it are drawn
        from the current sampler)."""
        return self._refreshed_at + self.period(batch_size)

    def refresh(self) -> None:
        """Rebuild the sampler from the current weights now (:meth:`draw` does it when due)."""
        # The sums are recomputed from omega here too (the fused step keeps running sums, which
        # can differ in the last bits): a resumed run then draws and weights exactly as before.
        self._weights.invalidate()
        masses = self._weights.masses()
        if self._sampler is None:
            self._sampler = WeightedSampler(masses)
        else:
            self._sampler.refresh(masses)
        self._refreshed_at = self.steps

    def draw(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Eq. 11: ``batch_size`` pool indices (int64, on :attr:`device`) drawn i.i.d. with
        p_i proportional to w_i^eps, with replacement. The uniforms come from ``generator`` (a
        CPU generator; torch's default one if None), so a seed gives the same indices on every
        device and rank. Refreshes the sampler first when due."""
        batch_size = _positive_int("batch_size", batch_size)
        if self.refresh_due(batch_size):
            self.refresh()
        assert self._sampler is not None
        return self._sampler.draw(batch_size, generator)

    def weighted_loss(self, indices: Tensor, per_example_loss: Tensor) -> Tensor:
        """l_out = mean_b r_{i_b} L_b (eqs. 10, 12), the background term of the classifier's
        objective: ``per_example_loss`` are the outlier losses of the items ``indices``
        (``reduction="none"``); the ratios carry no gradient. ``indices`` must lie in [0, N)
        (their min and max are read: a GPU sync if they are on a GPU)."""
        self._check_batch(indices, per_example_loss)
        indices = self._on_device(indices)
        r = self._weights.ratios(indices).to(per_example_loss.device)
        return (r * per_example_loss).mean()

    def step(self, indices: Tensor, per_example_loss: Tensor) -> None:
        """Gradient ascent of omega on l_out (Algorithm 1), from the detached per-example
        losses of the drawn items: the gradient is analytic, so the network is differentiated
        once (by the caller's own backward). Under DDP, every rank passes its own items and
        losses; they are gathered so that every rank applies the same update.

        Refuses indices outside [0, N) and non-finite losses (ValueError, weights untouched: one
        NaN would make every weight NaN). Checking reads the indices' min and max and the
        losses' sum back to the host: one GPU sync per tensor on a GPU. With
        ``step_scale="none"`` it warns once when lr * mean |L| exceeds 5e3 (module
        docstring)."""
        self._check_batch(indices, per_example_loss)
        indices = _gather(self._on_device(indices))
        losses = _gather(per_example_loss.detach().to(self.device))
        size = losses.abs().sum(dtype=torch.float64).item()  # not finite iff a loss is not
        if not math.isfinite(size):
            bad = int((~torch.isfinite(losses)).sum())
            raise ValueError(
                f"per_example_loss holds {bad} NaN or infinite value(s) of {losses.numel()}; "
                "the weights were not updated (a non-finite loss makes every weight NaN): "
                "check the model's outputs and the loss"
            )
        mean = size / losses.numel()
        if self.step_scale == "mean":
            losses = losses / max(mean, 1e-30)
        else:
            self._warn_loud(mean)
        self._weights.ascent_step(indices, losses, self.optimizer, compile=self.compile)
        self.steps += 1

    def _warn_loud(self, mean: float) -> None:
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self._warned_loud or lr * mean <= _LOUD_STEP:
            return
        self._warned_loud = True
        warnings.warn(
            f"the weight step's losses average {mean:.3g} at lr {lr:g}: lr * loss above "
            f"{_LOUD_STEP:g} makes the weights collapse onto a few items (Table 1's lr = 100 "
            "suits per-item losses of order 1); pass step_scale='mean' to BackgroundResampler "
            "or a smaller lr",
            RuntimeWarning,
            stacklevel=3,
        )

    def synchronized(self) -> bool:
        """Whether the weights are bit-identical on every rank (True without DDP)."""
        if _world() == 1:
            return True
        o = self.omega.double()
        probe = torch.stack([o.sum(), o.abs().sum(), o.max()])
        parts = _gather(probe[None])
        return bool((parts == parts[0]).all())

    # -- a subset of the pool ------------------------------------------------------------------

    def select(
        self, gamma: float, method: str = "authors", generator: torch.Generator | None = None
    ) -> Tensor:
        """A background subset of ratio ``gamma`` (sorted int64 pool indices, CPU), by
        ``method``: "authors" (keep i with probability min(1, gamma w_i / mean w), as the
        authors' code), "weighted" (exactly round(gamma N) items, sampled by w without
        replacement) or "topk" (the round(gamma N) largest weights)."""
        return select(
            method, n=len(self), gamma=gamma, weights=self.weights().cpu(), generator=generator
        )

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: omega, the momentum buffer, the step counter
        and the hyper-parameters; mid-way between refreshes also the sampler's masses and the
        cached sums (a state taken right after a refresh rebuilds both from omega)."""
        group = self.optimizer.param_groups[0]
        state: dict[str, Any] = {
            "omega": self.omega,
            "steps": self.steps,
            "refreshed_at": self._refreshed_at,
            "refresh_every": self.refresh_every,
            "eps": self.eps,
            "lr": float(group["lr"]),
            "momentum": float(group["momentum"]),
            "weight_decay": float(group["weight_decay"]),
            "step_scale": self.step_scale,
        }
        buf = self.optimizer.state.get(self._weights.omega, {}).get("momentum_buffer")
        if buf is not None:
            state["momentum_buffer"] = buf
        if self._sampler is not None and self._refreshed_at != self.steps:
            state["masses"] = self._sampler_masses()
            cache = self._weights._sums_cache
            if cache is not None and cache[0] == self._weights._cache_key():
                state["sums"] = torch.stack([cache[1], cache[2]])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a resampler over a pool of the same size."""
        omega = state.get("omega")
        if not isinstance(omega, Tensor) or omega.shape != (len(self),):
            shape = tuple(omega.shape) if isinstance(omega, Tensor) else type(omega).__name__
            raise ValueError(f"the state holds omega of shape {shape}, expected ({len(self)},)")
        if not bool(torch.isfinite(omega).all()):
            raise ValueError("the state's omega holds NaN or infinite values")
        self._weights.eps = state["eps"]
        group = self.optimizer.param_groups[0]
        group["lr"] = _number("lr", state["lr"], 0.0, strict=True)
        group["momentum"] = _momentum(state["momentum"])
        group["weight_decay"] = _number("weight_decay", state["weight_decay"], 0.0)
        self.step_scale = _step_scale(state.get("step_scale", "none"))
        every = state.get("refresh_every")
        self.refresh_every = None if every is None else _positive_int("refresh_every", every)
        with torch.no_grad():
            self._weights.omega.copy_(omega)
        self.optimizer.state.clear()
        if state.get("momentum_buffer") is not None:
            buf = state["momentum_buffer"].to(device=self.device, dtype=torch.float32)
            self.optimizer.state[self._weights.omega]["momentum_buffer"] = buf.clone()
        self.steps = int(state["steps"])
        self._refreshed_at = int(state["refreshed_at"])
        self._sampler = None
        self._weights.invalidate()
        if state.get("masses") is not None:
            self._sampler = WeightedSampler(state["masses"].to(self.device))
            if state.get("sums") is not None:
                sums = state["sums"].to(device=self.device, dtype=torch.float64)
                self._weights._set_sums(sums[0], sums[1])

    def save(self, path: str | os.PathLike, info: Mapping[str, str] | None = None) -> None:
        """Write :meth:`state_dict` to a safetensors file (atomically); :meth:`load` reads it.
        ``info``: strings of your own kept beside it (e.g. what the pool was), read back by
        :meth:`read_info`."""
        state = self.state_dict()
        tensors = {
            k: v.detach().cpu().contiguous() for k, v in state.items() if isinstance(v, Tensor)
        }
        scalars = {k: v for k, v in state.items() if not isinstance(v, Tensor)}
        meta = {"format": FORMAT, "eps": repr(self.eps), "state": json.dumps(scalars)}
        if info:
            meta["info"] = json.dumps({str(k): str(v) for k, v in info.items()})
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata=meta))

    @staticmethod
    def read_info(path: str | os.PathLike) -> dict[str, str]:
        """The ``info`` a file of :meth:`save` keeps ({} where none, or for an unreadable file:
        :meth:`load` says what is wrong with it)."""
        try:
            with safe_open(str(path), framework="pt") as handle:
                info = json.loads((handle.metadata() or {}).get("info", "{}"))
        except (SafetensorError, OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in info.items()} if isinstance(info, dict) else {}

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> BackgroundResampler:
        """A resampler restored from a file of :meth:`save` (or the omega-only weights files
        of bgresample 0.1). Raises FileNotFoundError or ValueError saying what the file holds."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"background weights file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
        fmt = meta.get("format")
        if fmt not in (FORMAT, _OLD_FORMAT) or "omega" not in tensors:
            raise ValueError(
                f"{path} is not a background weights file: it holds tensors "
                f"{sorted(tensors) or 'none'} with format {fmt!r}, expected 'omega' written by "
                "BackgroundResampler.save"
            )
        omega = tensors["omega"]
        if omega.ndim != 1 or omega.numel() == 0:
            raise ValueError(f"{path}: omega has shape {tuple(omega.shape)}, expected (N,)")
        try:
            scalars = json.loads(meta["state"]) if fmt == FORMAT else {}
            eps = float(meta["eps"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable metadata ({exc})") from None
        if not isinstance(scalars, dict):
            raise ValueError(f"{path}: its state metadata is not a mapping")
        state = {
            "eps": eps,
            "steps": 0,
            "refreshed_at": 0,
            "refresh_every": None,
            "lr": 100.0,
            "momentum": 0.9,
            "weight_decay": 0.0,
            **scalars,
            **tensors,
        }
        resampler = cls(omega.numel(), eps=eps, device=device)
        resampler.load_state_dict(state)
        return resampler

    # -- helpers ---------------------------------------------------------------------------------

    def _on_device(self, indices: Tensor) -> Tensor:
        """``indices`` as int64 on :attr:`device`, after checking that they are a non-empty
        1-d integer tensor of pool indices in [0, N) (reads their min and max: free on the CPU,
        a sync on a GPU; negative indices would otherwise wrap around)."""
        if not isinstance(indices, Tensor) or indices.dtype not in (torch.int64, torch.int32):
            raise TypeError("indices must be an integer tensor of pool indices (from draw)")
        if indices.ndim != 1 or indices.numel() == 0:
            raise ValueError(
                f"indices must be a non-empty 1-d tensor of pool indices, got shape "
                f"{tuple(indices.shape)}"
            )
        lo, hi = torch.stack(torch.aminmax(indices)).tolist()
        if lo < 0 or hi >= len(self):
            raise ValueError(
                f"indices must be pool indices in [0, {len(self) - 1}] (from draw), got values "
                f"from {lo} to {hi}"
            )
        return indices.to(device=self.device, dtype=torch.int64)

    @staticmethod
    def _check_batch(indices: Tensor, losses: Tensor) -> None:
        if not isinstance(indices, Tensor):
            raise TypeError("indices must be an integer tensor of pool indices (from draw)")
        if not isinstance(losses, Tensor) or losses.ndim != 1 or losses.shape != indices.shape:
            shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
            raise ValueError(
                f"per_example_loss must be 1-d with one value per index (reduction='none'), "
                f"got shape {shape} for {tuple(indices.shape)} indices"
            )

    def _sampler_masses(self) -> Tensor:
        assert self._sampler is not None
        return self._sampler.masses()
