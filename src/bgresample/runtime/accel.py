"""Where and how the model runs: the device, accelerator options, and how batches reach it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bgresample import dist
from bgresample.data import loader
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.data.transforms import MEAN, SIZE, STD, CropFlip, prepare
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
    GPU path is the CPU path on another device. ``size``, ``mean`` and ``std`` are the input
    side and per-channel normalisation of the batches (``data.size``, ``data.mean``,
    ``data.std``).
    """

    device: torch.device
    channels_last: bool = False
    amp: bool = False
    compile: bool = False
    data_on_device: bool = False
    compile_weights: bool = False
    workers: int = 0
    size: int = SIZE
    mean: tuple[float, ...] = (MEAN, MEAN, MEAN)
    std: tuple[float, ...] = (STD, STD, STD)

    @classmethod
    def from_config(cls, device: str, accel: Any, workers: int, data: Any = None) -> Accel:
        """From the ``device`` name, the ``accel`` config section and ``data.workers``; with
        the ``data`` section, its ``size``, ``mean`` and ``std``."""
        dev = resolve_device(device)
        cuda = dev.type == "cuda"
        norm: dict[str, Any] = {}
        if data is not None:
            norm = {"size": int(data.size), "mean": tuple(data.mean), "std": tuple(data.std)}
        return cls(
            device=dev,
            channels_last=_auto(accel.channels_last, cuda),
            amp=_auto(accel.amp, cuda),
            compile=bool(accel.compile),
            data_on_device=_auto(accel.data_on_device, cuda) and cuda,
            compile_weights=_auto(accel.compile_weights, cuda),
            workers=int(workers),
            **norm,
        )

    def model(self, model: nn.Module) -> nn.Module:
        """Move ``model`` here; return what the loop calls (DDP-wrapped and/or compiled)."""
        self.place(model)
        net = dist.wrap_model(model, self.device)
        return torch.compile(net) if self.compile else net

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in the memory format the batches will have."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

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
        ``aug`` on the device, normalised (``mean``, ``std``), resized to ``size``, in the model's
        memory format."""
        if self.device.type == "cuda" and raw.device.type == "cpu" and not raw.is_pinned():
            raw = raw.pin_memory()
        x = prepare(
            raw.to(self.device, non_blocking=True),
            normalized=normalized,
            aug=aug,
            mean=self.mean,
            std=self.std,
            size=self.size,
        )
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
