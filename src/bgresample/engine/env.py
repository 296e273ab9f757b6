"""What every training stage runs with besides its own config section."""

from __future__ import annotations

from dataclasses import dataclass

from bgresample.engine.accel import Accel


@dataclass(frozen=True)
class Env:
    """The accelerator, the seed every random stream derives from (:mod:`bgresample.rng`),
    whether ID images are flipped in augmentation, and whether progress bars are hidden."""

    accel: Accel
    seed: int
    flip: bool
    quiet: bool = False
