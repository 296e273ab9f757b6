"""Index samplers for background batches, with replacement, for pools of any size.

``torch.multinomial`` (and so ``WeightedRandomSampler``) refuses more than 2^24 categories,
too few for 80M Tiny Images. ``WeightedSampler`` inverts a float64 cumulative sum instead:
O(N) per ``refresh`` (8 bytes per item), O(n log N) per ``draw``.
"""

import torch
from torch import Tensor


class WeightedSampler:
    """Draws i with probability probs_i / sum_j probs_j (e.g. p of eq. 11)."""

    def __init__(self, probs: Tensor) -> None:
        self.refresh(probs)

    def refresh(self, probs: Tensor) -> None:
        """Rebuild the cumulative sum from new non-negative, unnormalised probabilities."""
        probs = probs.detach().to(torch.float64)
        if probs.ndim != 1 or probs.numel() == 0:
            raise ValueError(
                f"probs must be a non-empty 1-d tensor, got shape {tuple(probs.shape)}"
            )
        if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
            raise ValueError("probs must be finite and non-negative")
        self._cdf = torch.cumsum(probs, 0)
        self._total = self._cdf[-1]
        if not bool(self._total > 0):
            raise ValueError("probs must have a positive entry")
        # The first index where the cdf reaches the total is a positive-mass item; clamping
        # there keeps a draw of u == total off the trailing zero-mass items.
        self._last = torch.searchsorted(self._cdf, self._total)

    def __len__(self) -> int:
        return self._cdf.numel()

    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n indices (int64, on the probs' device), i.i.d. with replacement."""
        u = torch.rand(n, dtype=torch.float64, device=self._cdf.device, generator=generator)
        index = torch.searchsorted(self._cdf, u * self._total, right=True)
        return index.clamp_(max=self._last)


class UniformSampler:
    """Draws uniformly, with replacement, from a fixed subset ``indices`` of the pool."""

    def __init__(self, indices: Tensor) -> None:
        if indices.ndim != 1 or indices.numel() == 0:
            raise ValueError("indices must be a non-empty 1-d tensor")
        self._indices = indices.to(torch.int64)

    def __len__(self) -> int:
        return self._indices.numel()

    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n indices (int64) drawn uniformly from the subset."""
        pick = torch.randint(len(self), (n,), device=self._indices.device, generator=generator)
        return self._indices[pick]
