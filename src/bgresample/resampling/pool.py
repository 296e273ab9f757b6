"""A user's own data as a background pool: pool indices (from ``BackgroundResampler.draw`` or a
selected subset) map to batches of items."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class BackgroundPool:
    """A tensor of images (``N x ...``), a numpy array (memory-mapped ones are read an item at a
    time) or any map-style ``Dataset`` as a pool of N items.

    ``pool[indices]`` is the batch of the items at ``indices`` (a tensor of pool indices),
    stacked into one tensor. Dataset items may be ``image`` or ``(image, ...)`` tuples (the label
    of a labelled dataset is dropped: background data is unlabelled); ``transform`` is applied
    to each image first (e.g. ``torchvision.transforms.ToTensor()`` for PIL images).
    :meth:`batches` decodes the batches in DataLoader worker processes for datasets that read
    files.
    """

    def __init__(
        self,
        data: Tensor | Dataset,
        transform: Callable[[Any], Tensor] | None = None,
    ) -> None:
        if not isinstance(data, Tensor) and not hasattr(data, "__getitem__"):
            raise TypeError(
                f"a pool is a tensor of images or a map-style Dataset, got {type(data).__name__}"
            )
        if isinstance(data, Tensor) and data.ndim < 1:
            raise ValueError("a tensor pool needs a leading item dimension (N x ...)")
        try:
            n = len(data)
        except TypeError:
            raise TypeError(
                f"the pool's {type(data).__name__} has no len(); pass a map-style Dataset"
            ) from None
        if n < 1:
            raise ValueError("the pool is empty")
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def item(self, i: int) -> Tensor:
        """Item ``i`` as a tensor (transformed, label dropped)."""
        x = self.data[i]
        if isinstance(x, tuple | list) and not isinstance(self.data, Tensor):
            x = x[0]
        if self.transform is not None:
            x = self.transform(x)
        if isinstance(x, np.ndarray):  # e.g. a row of a memory-mapped .npy, read on demand
            x = torch.from_numpy(np.array(x))
        if not isinstance(x, Tensor):
            raise TypeError(
                f"pool item {i} is a {type(x).__name__}, not a tensor; pass "
                "transform=torchvision.transforms.ToTensor() (or your own) to BackgroundPool"
            )
        return x

    def __getitem__(self, indices: Tensor) -> Tensor:
        """The items at ``indices`` (int tensor of pool indices, any device) as one batch."""
        idx = torch.as_tensor(indices)
        if idx.dtype not in (torch.int64, torch.int32) or idx.ndim != 1:
            raise TypeError("index a pool with a 1-d integer tensor of pool indices")
        n = len(self)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise IndexError(f"pool indices must be in [0, {n - 1}]")
        if isinstance(self.data, Tensor) and self.transform is None:
            return self.data[idx.to(self.data.device)]
        return torch.stack([self.item(i) for i in idx.tolist()])

    def batches(
        self, keys: Iterable[Tensor], num_workers: int = 0, pin_memory: bool = False
    ) -> Iterator[Tensor]:
        """``self[k]`` for each index tensor of ``keys``, in order; with ``num_workers`` they are
        read ahead in DataLoader worker processes (``keys`` must not depend on the batches)."""
        if num_workers <= 0:
            for key in keys:
                yield self[key]
            return
        yield from DataLoader(
            _Batches(self),
            sampler=list(keys),
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )


class _Batches(Dataset):
    def __init__(self, pool: BackgroundPool) -> None:
        self.pool = pool

    def __getitem__(self, key: Tensor) -> Tensor:
        return self.pool[key]
