"""``topk-weight``: the deterministic variant of the paper's selection (Li & Vasconcelos, CVPR
2020): keep the k = round(gamma N) items with the largest weights learned by adversarial
resampling (Algorithm 1) instead of sampling by them. Same cost as ``resampled``."""

from __future__ import annotations

from torch import Tensor

from bgresample.resampling import select
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector
from bgresample.selectors.resampled import learned_weights


@register_selector
class TopKWeight(Selector):
    """A static subset: the k largest learned weights (ties: lower index first)."""

    name = "topk-weight"
    refresh = "once"
    needs = frozenset({"weights"})
    summary_line = "the k largest learned weights"

    def __init__(self, ctx: SelectionContext, **options: object) -> None:
        super().__init__(ctx, **options)
        self.forwards["setup"] = ctx.weights_cost
        self.setup_fwd_eq = ctx.weights_fwd_eq
        self.seconds = ctx.weights_seconds

    def select_once(self) -> Tensor:
        ctx = self.ctx
        w = learned_weights(ctx, self.name)
        return select("topk", n=len(ctx.pool), gamma=ctx.gamma, weights=w)
