"""The validation protocol: an ID validation split carved from the training data, and validation
OOD data held out from the background pool (as the Outlier Exposure literature does), never
from the test OOD sets. Defaults are chosen on these; the held-out items are never trained on.
"""

from __future__ import annotations

from typing import Any

import torch

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.rng import POOL_SPLIT_SALT, split_generator

#: Name of the validation OOD set (the pool items held out from training).
HOLDOUT = "pool-holdout"


class SubsetSource:
    """Items ``indices`` of ``base`` as a source of their own: item k is ``base`` item
    ``indices[k]``, with its family and source (a view; nothing is copied or re-read)."""

    def __init__(self, base: ImageSource, indices: torch.Tensor, name: str | None = None) -> None:
        self.base, self.indices = base, indices.long().cpu()
        self.name = name or base.name
        self.normalized = base.normalized
        keep = self.indices.tolist()
        self.family = None if base.family is None else [base.family[i] for i in keep]
        self.source = None if base.source is None else [base.source[i] for i in keep]
        self.decodes = bool(getattr(base, "decodes", False))

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.base.get_batch(self.indices[torch.as_tensor(indices).long().cpu()])

    @property
    def skipped(self) -> list[str]:
        return list(getattr(self.base, "skipped", []))

    @property
    def skip_reasons(self) -> dict[str, str]:
        return dict(getattr(self.base, "skip_reasons", {}))

    def bad_items(self, since: int = 0) -> list[tuple[int, str, str]]:
        return self.base.bad_items(since)  # type: ignore[attr-defined]

    def add_bad_items(self, items: list[tuple[int, str, str]]) -> None:
        self.base.add_bad_items(items)  # type: ignore[attr-defined]


def subset(source: ImageSource, indices: torch.Tensor, name: str | None = None) -> Any:
    """The items ``indices`` of ``source``: an in-memory copy for arrays, a view otherwise."""
    if isinstance(source, ImageArray):
        keep = indices.tolist()
        return ImageArray(
            source.data[indices.to(source.data.device)],
            None if source.family is None else [source.family[i] for i in keep],
            None if source.source is None else [source.source[i] for i in keep],
            name=name or source.name,
            normalized=source.normalized,
        )
    return SubsetSource(source, indices, name)


def _split(n: int, fraction: float, seed: int, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (kept, held-out) indices of ``range(n)``, round(fraction * n) held out at random."""
    k = round(fraction * n)
    perm = torch.randperm(n, generator=split_generator(seed, salt))
    return perm[k:].sort().values, perm[:k].sort().values


def split_id(
    train: LabeledImages, fraction: float, seed: int
) -> tuple[LabeledImages, LabeledImages | None]:
    """(training, validation) split of the ID training data, stratified by class."""
    if fraction <= 0:
        return train, None
    keep, held = [], []
    targets = train.targets.cpu()
    for c in targets.unique().tolist():
        members = torch.nonzero(targets == c).flatten()
        k, h = _split(len(members), fraction, seed, salt=int(c))
        keep.append(members[k]), held.append(members[h])
    k, h = torch.cat(keep).sort().values, torch.cat(held).sort().values
    if len(h) == 0 or len(k) == 0:
        raise ValueError(
            f"data.validation.id_fraction={fraction} leaves {len(k)} training and {len(h)} "
            f"validation images of {len(train)}; choose a fraction that keeps both non-empty"
        )
    dev = train.data.device
    return (
        LabeledImages(train.data[k.to(dev)], train.targets[k.to(dev)]),
        LabeledImages(train.data[h.to(dev)], train.targets[h.to(dev)]),
    )


def split_pool(pool: ImageSource, fraction: float, seed: int) -> tuple[Any, Any | None]:
    """(training pool, held-out validation OOD set) of the background pool."""
    if fraction <= 0:
        return pool, None
    keep, held = _split(len(pool), fraction, seed, salt=POOL_SPLIT_SALT)
    if len(held) == 0:
        return pool, None
    return subset(pool, keep), subset(pool, held, name=HOLDOUT)
