"""``random``: a uniformly random subset of exactly k = round(gamma N) pool items, the paper's
Random baseline (Li & Vasconcelos, CVPR 2020, Table 2), drawn from the seed's ``subset``
stream."""

from __future__ import annotations

from torch import Tensor

from bgresample.resampling import select
from bgresample.selectors.base import Selector
from bgresample.selectors.registry import register_selector


@register_selector
class RandomSubset(Selector):
    """A static uniform k-subset; no selection cost."""

    name = "random"
    refresh = "once"
    streams = {"subset": 101}
    summary_line = "a uniform k-subset (the paper's Random)"

    def select_once(self) -> Tensor:
        ctx = self.ctx
        return select(
            "random",
            n=len(ctx.pool),
            gamma=ctx.gamma,
            generator=self.rng("subset"),
        )
