"""Toy models and images shared by the selector tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TwoPixelModel(nn.Module):
    """features = the first two pixels of channel 0 (normalised), a linear fc."""

    feature_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def features(self, x: Tensor) -> Tensor:
        return x[:, 0, 0, :2]


def random_images(n: int, g: torch.Generator) -> Tensor:
    """``n`` uint8 3x32x32 images of uniform noise from ``g``."""
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
