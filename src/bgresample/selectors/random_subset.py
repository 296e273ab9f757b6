"""``random``: a uniformly random subset of exactly k = round(gamma N) pool items, the paper's
Random baseline (Li & Vasconcelos, CVPR 2020, Table 2), drawn from the seed's RANDOM_SUBSET
stream (:mod:`bgresample.rng`)."""

from __future__ import annotations

from torch import Tensor

from bgresample.resampling import select
from bgresample.rng import Stream, generator
from bgresample.selectors.base import Selector


class RandomSubset(Selector):
    """A static uniform k-subset; no selection cost."""

    name = "random"
    refresh = "once"

    def select_once(self) -> Tensor:
        ctx = self.ctx
        return select(
            "random",
            n=len(ctx.pool),
            gamma=ctx.gamma,
            generator=generator(ctx.seed, Stream.RANDOM_SUBSET),
        )
