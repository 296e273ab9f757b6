"""Batched tensor pre-processing (paper, Section C): pad-crop, flip and normalise whole batches.

Train: random 32x32 crop after 4-pixel zero padding, horizontal flip with probability 0.5 (off for
digits / SVHN), scale to [0, 1], normalise per channel with ``data.mean`` and ``data.std`` (the
paper's mean 0.5 and std 0.25 by default), then resize bilinearly to ``data.size`` when that is
not 32. Test: the same without the crop and flip (the images are stored 32x32). Sets defined in
normalised space (Gaussian / Uniform OOD, ``normalized``) skip the normalisation but are resized.
Batches are augmented on whatever device they are on; the random parameters are drawn on the CPU
for a whole *global* batch, so that a rank's shard of them is the same as in a single-process run.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Default normalisation (``data.mean``, ``data.std`` of every channel) and stored image side.
MEAN = 0.5
STD = 0.25
SIZE = 32
PAD = 4

Channels = float | Sequence[float]


@dataclass
class CropFlip:
    """Per-image crop offsets (after padding) and flips of a batch."""

    dy: torch.Tensor
    dx: torch.Tensor
    flips: torch.Tensor | None

    @classmethod
    def draw(
        cls, n: int, generator: torch.Generator, pad: int = PAD, flip: bool = True
    ) -> CropFlip:
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5 if flip else None
        return cls(dy, dx, flips)

    def shard(self, sl: slice) -> CropFlip:
        return CropFlip(self.dy[sl], self.dx[sl], None if self.flips is None else self.flips[sl])


@functools.lru_cache(maxsize=16)
def _per_channel(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def _channels(values: Channels, device: torch.device) -> float | torch.Tensor:
    """One number when every channel has the same (the same arithmetic as a scalar), else a
    ``(1, C, 1, 1)`` tensor on ``device``."""
    if isinstance(values, int | float):
        return float(values)
    vals = tuple(float(v) for v in values)
    return vals[0] if len(set(vals)) == 1 else _per_channel(vals, device)


def normalize(x: torch.Tensor, mean: Channels = MEAN, std: Channels = STD) -> torch.Tensor:
    """uint8 pixels -> float ``(x / 255 - mean) / std``, per channel (default 0.5 and 0.25)."""
    return (x.float() / 255.0 - _channels(mean, x.device)) / _channels(std, x.device)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float images (N x C x H x W) resized bilinearly to ``size`` x ``size`` (as they are if
    they have that size already)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def apply_crop_flip(x: torch.Tensor, p: CropFlip, pad: int = PAD) -> torch.Tensor:
    """Crop each image of ``x`` (N x C x H x W) at its offset after zero padding; flip some.

    One ``gather`` over the flattened padded images with a per-image (row, column) index (the
    flip reverses an image's columns): about 5x faster on a CPU than advanced indexing, and the
    same values.
    """
    n, c, h, w = x.shape
    dev = x.device
    wp = w + 2 * pad
    xp = F.pad(x, (pad, pad, pad, pad)).reshape(n, c, (h + 2 * pad) * wp)
    rows = p.dy.to(dev)[:, None] + torch.arange(h, device=dev)  # n x h
    cols = p.dx.to(dev)[:, None] + torch.arange(w, device=dev)  # n x w
    if p.flips is not None:
        cols = torch.where(p.flips.to(dev)[:, None], cols.flip(1), cols)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    return xp.gather(2, flat.expand(n, c, h * w)).reshape(n, c, h, w)


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator, pad: int = PAD, flip: bool = True
) -> torch.Tensor:
    """Random crop of the original size after zero padding, and random horizontal flip."""
    return apply_crop_flip(x, CropFlip.draw(len(x), generator, pad, flip), pad)


def prepare(
    x: torch.Tensor,
    *,
    normalized: bool = False,
    aug: CropFlip | None = None,
    mean: Channels = MEAN,
    std: Channels = STD,
    size: int = SIZE,
) -> torch.Tensor:
    """A batch ready for the model: augmented with ``aug`` if given, normalised with ``mean``
    and ``std`` (unless already ``normalized``), resized to ``size``, float32."""
    if normalized:
        return resize(x.float(), size)
    if aug is not None:
        x = apply_crop_flip(x, aug)
    return resize(normalize(x, mean, std), size)
