"""Batched tensor pre-processing (paper, Section C): pad-crop, flip and normalise whole batches.

Train: random 32x32 crop after 4-pixel zero padding, horizontal flip with probability 0.5 (off for
digits / SVHN), scale to [0, 1], normalise with mean 0.5 and std 0.25. Test: normalise only (the
images are already 32x32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MEAN = 0.5
STD = 0.25


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float ``(x / 255 - 0.5) / 0.25``."""
    return (x.float() / 255.0 - MEAN) / STD


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop of the original size after zero padding, and random horizontal flip, per image.

    Works on a whole uint8 N x C x H x W batch at once; the random offsets come from ``generator``
    (on the CPU) so that the draws do not depend on the device.
    """
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device) if flip else None
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # n x h
    cols = dx[:, None] + torch.arange(w, device=x.device)  # n x w
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    b = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # n x h x w x c
    return out.permute(0, 3, 1, 2).contiguous()


def prepare(
    x: torch.Tensor,
    *,
    normalized: bool = False,
    train: bool = False,
    generator: torch.Generator | None = None,
    flip: bool = True,
) -> torch.Tensor:
    """A batch ready for the model: augmented when ``train``, normalised, float32."""
    if normalized:
        return x.float()
    if train:
        if generator is None:
            raise ValueError("training augmentation needs a generator")
        x = random_crop_flip(x, generator, flip=flip)
    return normalize(x)
