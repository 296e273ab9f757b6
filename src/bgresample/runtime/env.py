"""What every training stage runs with besides its own config section."""

from __future__ import annotations

from dataclasses import dataclass

from bgresample.runtime.accel import Accel


@dataclass(frozen=True)
class Env:
    """The accelerator, the seed every random stream derives from (:mod:`bgresample.rng`),
    whether ID images and background images are flipped in augmentation (``background_flip``
    None: as the ID images, one transform for both as in the authors' code), and whether
    progress bars are hidden."""

    accel: Accel
    seed: int
    flip: bool
    quiet: bool = False
    background_flip: bool | None = None

    @property
    def bg_flip(self) -> bool:
        """Whether background images are flipped."""
        return self.flip if self.background_flip is None else self.background_flip
