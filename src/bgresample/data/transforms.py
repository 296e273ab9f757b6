"""Batched tensor pre-processing (paper, Section C): pad-crop, flip and normalise whole batches.

Train: random 32x32 crop after 4-pixel zero padding, horizontal flip with probability 0.5 (off for
digits / SVHN), scale to [0, 1], normalise with mean 0.5 and std 0.25. Test: normalise only (the
images are already 32x32). Batches are augmented on whatever device they are on; the random
parameters are drawn on the CPU for a whole *global* batch, so that a rank's shard of them is the
same as in a single-process run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MEAN = 0.5
STD = 0.25
PAD = 4


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


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float ``(x / 255 - 0.5) / 0.25``."""
    return (x.float() / 255.0 - MEAN) / STD


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
    x: torch.Tensor, *, normalized: bool = False, aug: CropFlip | None = None
) -> torch.Tensor:
    """A batch ready for the model: augmented with ``aug`` if given, normalised, float32."""
    if normalized:
        return x.float()
    if aug is not None:
        x = apply_crop_flip(x, aug)
    return normalize(x)
