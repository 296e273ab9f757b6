"""``random``: a uniformly random subset of exactly k = round(gamma N) pool items, the paper's
Random baseline (Li & Vasconcelos, CVPR 2020, Table 2). Drawn from the same stream as
``bgresample run``'s Random variant, so both fine-tune on the same subset for a seed."""

from __future__ import annotations

from torch import Tensor

from bgresample.engine.common import generator
from bgresample.engine.experiment import RANDOM_SUBSET_STREAM
from bgresample.resampling import select
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
            generator=generator(ctx.seed, RANDOM_SUBSET_STREAM),
        )
