"""Pieces shared by the training loops: devices and accelerator options, step-seeded batches,
optimisers, schedules and forward passes."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bgresample import dist
from bgresample.data import loader
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import CropFlip, prepare
from bgresample.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda:LOCAL_RANK`` under torchrun."""
    try:
        device = dist.device_for(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available; use --device cpu")
    return device


def _auto(value: Any, cuda: bool) -> bool:
    return cuda if value == "auto" else bool(value)


@dataclass
class Accel:
    """Where and how the model runs: device, channels_last, bf16 autocast, torch.compile (of the
    model, and of the background-weight step: ``compile_weights``), and how its batches are read
    (``workers`` DataLoader processes decode image-file pools).

    ``auto`` settings are on for CUDA and off on the CPU; fp32 is the default on the CPU, and the
    GPU path is the CPU path on another device.
    """

    device: torch.device
    channels_last: bool = False
    amp: bool = False
    compile: bool = False
    data_on_device: bool = False
    compile_weights: bool = False
    workers: int = 0

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Accel:
        device = resolve_device(cfg["device"])
        a, cuda = cfg["accel"], device.type == "cuda"
        return cls(
            device=device,
            channels_last=_auto(a["channels_last"], cuda),
            amp=_auto(a["amp"], cuda),
            compile=bool(a["compile"]),
            data_on_device=_auto(a["data_on_device"], cuda) and cuda,
            compile_weights=_auto(a["compile_weights"], cuda),
            workers=int(cfg["data"]["workers"]),
        )

    def model(self, model: nn.Module) -> nn.Module:
        """Move ``model`` here; return what the loop calls (DDP-wrapped and/or compiled)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        net = dist.wrap_model(model, self.device)
        return torch.compile(net) if self.compile else net

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def batch(
        self, images: ImageSource | LabeledImages, idx: torch.Tensor, aug: CropFlip | None = None
    ) -> torch.Tensor:
        """Images at ``idx`` ready for the model (:meth:`ready`), read in this process."""
        return self.ready(images.get_batch(idx), aug, images.normalized)

    def batches(
        self,
        images: ImageSource | LabeledImages,
        keys: Iterable[torch.Tensor],
        ahead: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Raw batches of ``images`` at the index tensors ``keys``, in order, for :meth:`ready`.

        With ``ahead`` (``keys`` then must not depend on what the loop does with the batches)
        and a source that decodes image files, they are decoded ``workers`` batches ahead in
        DataLoader worker processes (:func:`bgresample.data.loader.batches`) and pinned for a
        GPU; otherwise each is read when the loop asks for it.
        """
        workers = self.workers if ahead else 0
        return loader.batches(images, keys, workers, pin_memory=self.device.type == "cuda")

    def ready(
        self, raw: torch.Tensor, aug: CropFlip | None = None, normalized: bool = False
    ) -> torch.Tensor:
        """A raw batch on the device (uint8 copied pinned and non-blocking), augmented with
        ``aug`` on the device, normalised, in the model's memory format."""
        if self.device.type == "cuda" and raw.device.type == "cpu" and not raw.is_pinned():
            raw = raw.pin_memory()
        x = prepare(raw.to(self.device, non_blocking=True), normalized=normalized, aug=aug)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def stage(self, *sets: LabeledImages | ImageSource | None) -> None:
        """Keep in-memory ID data, pools and OOD sets on the GPU (``data_on_device``), as
        airbench does (sources read from files on demand stay where they are)."""
        if not self.data_on_device:
            return
        for s in sets:
            if isinstance(s, LabeledImages | ImageArray):
                s.data = s.data.to(self.device)
                if isinstance(s, LabeledImages):
                    s.targets = s.targets.to(self.device)


def generator(seed: int, stream: int, step: int = 0) -> torch.Generator:
    """A CPU generator for one random stream (ID order, augmentation, background, ...) of a seed
    at one step: every loop's randomness is a function of ``(seed, stream, step)``, which makes
    runs resumable at any step and identical on every rank."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_033 + step)


def seed_step(seed: int, step: int) -> None:
    """Seed torch's global RNG (dropout) for one step."""
    torch.manual_seed((seed * 1_000_003 + 97) * 1_000_033 + step)


class EpochBatches:
    """Global mini-batches of ``range(n)`` as a function of the step: epochs of shuffled indices
    (a fresh permutation per epoch, from ``(seed, stream, epoch)``), the last partial batch
    dropped (kept when ``n < batch_size``). The current epoch's permutation is cached."""

    def __init__(self, n: int, batch_size: int, seed: int, stream: int) -> None:
        if n == 0:
            raise UserError("cannot draw batches from an empty set")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self.per_epoch = max(n // batch_size, 1)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def at(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._perm = torch.randperm(self.n, generator=generator(self.seed, self.stream, epoch))
            self._epoch = epoch
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


def id_batch(
    train: LabeledImages,
    batches: EpochBatches,
    step: int,
    seed: int,
    flip: bool,
    accel: Accel,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the ID batch of ``step``: images augmented from the step's own
    stream (2) and ready for the model, and their labels on the device."""
    gidx = batches.at(step)
    sl = local_slice(len(gidx))
    aug = CropFlip.draw(len(gidx), generator(seed, 2, step), flip=flip).shard(sl)
    idx = gidx[sl]
    y = train.targets[idx.to(train.targets.device)].to(accel.device, non_blocking=True)
    return accel.batch(train, idx, aug), y


def uniform_batch(n: int, batch_size: int, seed: int, stream: int, step: int) -> torch.Tensor:
    """``batch_size`` indices drawn uniformly with replacement from ``range(n)`` at ``step``:
    O(batch) for pools of any size (background batches of a fixed subset)."""
    return torch.randint(n, (batch_size,), generator=generator(seed, stream, step))


def local_slice(n_global: int) -> slice:
    """The slice of a global batch of ``n_global`` that this rank processes."""
    info = dist.info()
    if n_global % info.world_size:
        raise UserError(
            f"global batch of {n_global} is not divisible by {info.world_size} processes; "
            "choose batch sizes that are multiples of --nproc_per_node"
        )
    k = n_global // info.world_size
    return slice(info.rank * k, (info.rank + 1) * k)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(n // batch_size, 1)


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def schedule(
    opt: torch.optim.Optimizer, kind: str, total_steps: int, steps_per_ep: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate factor: ``cosine``, ``step`` (x0.1 at 50% and 75%), ``step30``
    (x0.1 every 30 epochs, the authors' fine-tuning recipe) or ``constant``."""
    total = max(total_steps, 1)
    if kind == "cosine":
        fn = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))  # noqa: E731
    elif kind == "step":
        fn = lambda s: 0.1 ** ((s >= total // 2) + (s >= 3 * total // 4))  # noqa: E731
    elif kind == "step30":
        fn = lambda s: 0.1 ** (s // (30 * steps_per_ep))  # noqa: E731
    elif kind == "constant":
        fn = lambda s: 1.0  # noqa: E731
    else:
        raise UserError(f"unknown schedule '{kind}'; valid: cosine, step, step30, constant")
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)


def check_finite(loss: torch.Tensor, stage: str, step: int, last_checkpoint: Path | None) -> None:
    """Stop a stage on a NaN / inf loss, naming the step and the last good checkpoint."""
    if not torch.isfinite(loss):
        exists = last_checkpoint is not None and Path(last_checkpoint).is_file()
        where = str(last_checkpoint) if exists else "none yet"
        raise UserError(
            f"{stage}: loss became {loss.item()} at step {step}; last good checkpoint: {where}. "
            "Lower the learning rate (--set ...lr=) and resume or re-run."
        )


def map_sharded(
    images: ImageSource | LabeledImages,
    indices: torch.Tensor | None,
    batch_size: int,
    accel: Accel,
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
) -> tuple[torch.Tensor, ...]:
    """``fn`` over batches of the items at ``indices`` (all items by default), outputs
    concatenated on the CPU. Under torchrun each rank takes a contiguous share of the items and
    the shares are gathered in rank order, so every item is counted once.
    """
    idx = torch.arange(len(images)) if indices is None else indices
    info = dist.info()
    mine = torch.tensor_split(idx, info.world_size)[info.rank] if info.enabled else idx
    keys = (mine[i : i + batch_size] for i in range(0, len(mine), batch_size))
    outs = [fn(accel.ready(raw, None, images.normalized)) for raw in accel.batches(images, keys)]
    local = tuple(torch.cat(parts) for parts in zip(*outs, strict=True)) if outs else None
    parts = [p for p in dist.gather_objects(local) if p is not None] if info.enabled else [local]
    if not parts or parts[0] is None:
        raise ValueError("no items to evaluate")
    return tuple(torch.cat(cols) for cols in zip(*parts, strict=True))


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: ImageSource | LabeledImages,
    accel: Accel,
    batch_size: int = 1000,
    indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (float32, CPU) of ``images`` (or the items at ``indices``), model in eval mode;
    sharded across ranks and gathered by :func:`map_sharded`."""
    if indices is not None and len(indices) == 0 or len(images) == 0:
        return torch.empty(0)
    was_training = model.training
    model.eval()

    def fn(x: torch.Tensor) -> tuple[torch.Tensor]:
        with accel.autocast():
            return (model(x).float().cpu(),)

    try:
        (logits,) = map_sharded(images, indices, batch_size, accel, fn)
    finally:
        model.train(was_training)
    return logits


def joint_forward(
    net: nn.Module, x_id: torch.Tensor, x_bg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward pass over the ID and background batches together; split the logits."""
    if x_bg is None:
        return net(x_id), None
    logits = net(torch.cat([x_id, x_bg]))
    return logits[: len(x_id)], logits[len(x_id) :]


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y)
