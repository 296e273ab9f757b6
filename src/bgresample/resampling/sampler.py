"""Index samplers for background batches, with replacement, for pools of any size.

``torch.multinomial`` (and so ``WeightedRandomSampler``) refuses more than 2^24 categories,
too few for 80M Tiny Images. ``WeightedSampler`` inverts a two-level cumulative sum instead:

- the masses themselves, float32 (4 bytes per item), in blocks of ``BLOCK`` items;
- the float64 cumulative sum of the block totals (8 / ``BLOCK`` bytes per item).

A draw u * total finds its block in the block cdf (float64, as a flat float64 cdf would), then
its item by a float64 cumulative sum of that block's masses, computed at draw time (n x BLOCK
values). Every positive mass keeps its float32 value, however small next to the others: the
tail of a heavy-tailed p is drawn at its own rate, to float64 resolution of the running total,
exactly as with a flat float64 cdf, at half its memory. Zero-mass items are never drawn. Masses
below about 1e-38 of the largest (float32's range) count as zero; ``dtype=torch.float64`` keeps
them, at 8 bytes per item.

The sampler lives on the device of the masses it is given (e.g. the GPU next to the weights);
the uniform draws always come from the CPU generator passed to ``draw`` and are then moved
there, so a seed gives the same indices on every device and every rank.
"""

import torch
from torch import Tensor

BLOCK = 64
"""Items per block of ``WeightedSampler``: draw cost n x BLOCK, memory 8 / BLOCK bytes per item
for the block cdf."""

_CHUNK = 1 << 22
_DRAWS = 1 << 12  # draws located at once: _DRAWS x BLOCK float64 values (2 MiB)


class WeightedSampler:
    """Draws i with probability probs_i / sum_j probs_j (e.g. p of eq. 11).

    ``probs`` may be unnormalised (``BackgroundWeights.masses()``), of any float dtype, on any
    device; the sampler keeps a float32 (or ``dtype``) copy there.
    """

    def __init__(
        self, probs: Tensor, dtype: torch.dtype = torch.float32, block: int = BLOCK
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        self.dtype, self.block = dtype, int(block)
        self.refresh(probs)

    def refresh(self, probs: Tensor) -> None:
        """Rebuild from new non-negative, finite, unnormalised probabilities.

        Two reductions check the input (no N-sized temporaries); float64 input is scaled by its
        maximum before rounding to float32, so no finite value overflows.
        """
        probs = probs.detach()
        if probs.ndim != 1 or probs.numel() == 0:
            raise ValueError(
                f"probs must be a non-empty 1-d tensor, got shape {tuple(probs.shape)}"
            )
        if not probs.is_floating_point():
            probs = probs.double()
        lo, hi = probs.min(), probs.max()  # both propagate NaN
        if not bool(torch.isfinite(hi)) or not bool(lo >= 0):
            raise ValueError(
                f"probs must be finite and non-negative, got values from {lo.item()} to "
                f"{hi.item()} (from a BackgroundResampler: its weights overflowed, e.g. from a "
                "too large lr for the losses' scale)"
            )
        if not bool(hi > 0):
            raise ValueError("probs must have a positive entry")
        self._mass = None  # free the old masses before building the new ones
        self._cdf = None
        n, b = probs.numel(), self.block
        nb = -(-n // b)
        mass = torch.zeros(nb * b, dtype=self.dtype, device=probs.device)
        scale = None
        if torch.finfo(probs.dtype).max > torch.finfo(self.dtype).max:
            scale = hi  # float64 -> float32: keep the largest finite values finite
        for s in range(0, n, _CHUNK):
            part = probs[s : s + _CHUNK]
            mass[s : s + part.numel()] = part if scale is None else part / scale
        rows = mass.view(nb, b)
        blocks = torch.empty(nb, dtype=torch.float64, device=probs.device)
        step = max((1 << 20) // b, 1)  # sum(dtype=float64) casts its input first: chunk it
        for r in range(0, nb, step):
            blocks[r : r + step] = rows[r : r + step].sum(1, dtype=torch.float64)
        cdf = torch.zeros(nb + 1, dtype=torch.float64, device=probs.device)
        torch.cumsum(blocks, 0, out=cdf[1:])
        total = cdf[-1]
        if not bool(total > 0):  # every positive mass underflowed
            raise ValueError("probs must have an entry above 1e-38 of the largest")
        self._n = n
        self._mass = mass.view(nb, b)
        self._cdf = cdf
        self._total = total
        # The first block where the cdf reaches the total has positive mass; clamping there keeps
        # a draw of u * total == total off trailing zero-mass blocks.
        self._last = torch.searchsorted(cdf[1:], total)

    def __len__(self) -> int:
        return self._n

    @property
    def device(self) -> torch.device:
        return self._cdf.device

    def masses(self) -> Tensor:
        """The (unnormalised) masses the sampler draws by, one per item, as held: float32 (or
        ``dtype``); float64 input is kept scaled by its maximum. A sampler built from them draws
        exactly as this one."""
        return self._mass.reshape(-1)[: self._n]

    @property
    def nbytes(self) -> int:
        """Bytes held by the sampler (masses and block cdf)."""
        return self._mass.numel() * self._mass.element_size() + self._cdf.numel() * 8

    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n indices (int64, on the sampler's device), i.i.d. with replacement.

        The uniforms come from ``generator`` (a CPU generator; torch's default CPU generator if
        None) whatever the sampler's device.
        """
        return self.locate(torch.rand(n, dtype=torch.float64, generator=generator))

    def locate(self, u: Tensor) -> Tensor:
        """The items (int64, on the sampler's device) that uniforms ``u`` in [0, 1] fall on."""
        x = u.to(device=self.device, dtype=torch.float64) * self._total
        if x.numel() <= _DRAWS:
            return self._locate(x)
        return torch.cat([self._locate(part) for part in x.split(_DRAWS)])

    def _locate(self, x: Tensor) -> Tensor:
        blk = torch.searchsorted(self._cdf[1:], x, right=True).clamp_(max=self._last)
        rest = (x - self._cdf[blk])[:, None]  # >= 0: cdf[blk] <= x
        rows = self._mass[blk].double().cumsum_(1)  # draws x BLOCK, float64
        j = torch.searchsorted(rows, rest, right=True)
        # Rounding can leave rest >= the row's own total: take the row's last positive item.
        last = torch.searchsorted(rows, rows[:, -1:].contiguous(), right=False)
        return (blk * self.block + torch.minimum(j, last)[:, 0]).to(torch.int64)


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
