"""``resampled``: the paper's method (Li & Vasconcelos, "Background Data Resampling for
Outlier-Aware Classification", CVPR 2020): weights learned by adversarial resampling
(Algorithm 1, :class:`bgresample.BackgroundResampler`), then the authors' rule keeps item i
with probability min(1, gamma w_i / mean w) (expected size k; ``select.method`` may name another
weight-based rule), drawn from the seed's SELECT stream. Its cost is Algorithm 1's forward (and
backward) passes over pool items."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from bgresample.errors import UserError
from bgresample.options import option
from bgresample.resampling import select
from bgresample.rng import Stream
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector


def learned_weights(ctx: SelectionContext, name: str) -> Tensor:
    """The context's learned weights; a clear error where they are missing."""
    if ctx.weights is None:
        raise UserError(f"selector {name!r} needs learned background weights (Algorithm 1)")
    return ctx.weights


@register_selector
class Resampled(Selector):
    """A static subset chosen by the learned weights with ``method`` (default: the authors')."""

    @dataclass
    class Options:
        method: str = option("authors", doc="the rule of select.method, which sets it")

    name = "resampled"
    refresh = "once"
    config_section = False  # its one option is select.method
    needs = frozenset({"weights"})
    streams = {"select": Stream.SELECT}  # shared with `bgresample select`
    summary_line = "Algorithm 1's weights + the authors' rule (the paper's method)"

    def __init__(self, ctx: SelectionContext, **options: str) -> None:
        super().__init__(ctx, **options)
        self.method = self.opts.method
        self.forwards["setup"] = ctx.weights_cost
        self.setup_fwd_eq = ctx.weights_fwd_eq
        self.seconds = ctx.weights_seconds

    def select_once(self) -> Tensor:
        ctx = self.ctx
        return select(
            self.method,
            n=len(ctx.pool),
            gamma=ctx.gamma,
            weights=learned_weights(ctx, self.name),
            generator=self.rng("select"),
        )
