"""In-memory image containers shared by the ID datasets, background pools and OOD sets.

Images are kept as uint8 NCHW tensors (pixel space) so that whole batches are indexed, augmented
and normalised at once (see :mod:`bgresample.data.transforms`). Sets that are defined in
normalised space (Gaussian / Uniform OOD, docs/method.md) are kept as float with
``normalized=True``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch


@dataclass
class ImageArray:
    """Unlabelled images with stable integer indices and optional provenance.

    ``family[i]`` and ``source[i]`` say where item ``i`` came from (e.g. ``photo`` /
    ``astronaut``); weights and subset manifests refer to items by their index.
    """

    data: torch.Tensor
    family: list[str] | None = None
    source: list[str] | None = None
    name: str = ""
    normalized: bool = False

    def __post_init__(self) -> None:
        if self.data.ndim != 4 or self.data.shape[1] != 3:
            raise ValueError(
                f"{self.name or 'images'}: expected N x 3 x H x W, got {tuple(self.data.shape)}"
            )
        if not self.normalized and self.data.dtype != torch.uint8:
            raise ValueError(f"{self.name or 'images'}: pixel-space images must be uint8")
        for attr in ("family", "source"):
            values = getattr(self, attr)
            if values is not None and len(values) != len(self.data):
                raise ValueError(
                    f"{self.name}: {attr} has {len(values)} entries for {len(self.data)} images"
                )

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` (uint8, or float when ``normalized``)."""
        return self.data[indices.to(self.data.device)]

    def family_counts(self, indices: torch.Tensor | None = None) -> dict[str, int]:
        """Number of items of each family, over ``indices`` or the whole set."""
        if self.family is None:
            return {}
        fam = self.family if indices is None else [self.family[i] for i in indices.tolist()]
        return dict(sorted(Counter(fam).items()))


@dataclass
class LabeledImages:
    """Labelled ID images: uint8 N x 3 x H x W and int64 labels."""

    data: torch.Tensor
    targets: torch.Tensor
    normalized = False  # pixel space (a class attribute, read like ImageArray's)

    def __post_init__(self) -> None:
        if len(self.data) != len(self.targets):
            raise ValueError(f"{len(self.data)} images but {len(self.targets)} labels")

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` (uint8)."""
        return self.data[indices.to(self.data.device)]

    @property
    def num_classes(self) -> int:
        return int(self.targets.max()) + 1 if len(self.targets) else 0
