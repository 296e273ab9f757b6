"""``ntom``: outlier mining by quantile (Chen, Li, Wu, Liang & Jha, "ATOM: Robustifying
Out-of-distribution Detection Using Outlier Mining", ECML PKDD 2021; NTOM is ATOM without the
adversarial perturbation). Every epoch: score a random candidate set of the pool with the
current model, sort it from most to least ID-like, skip the first ``quantile`` fraction (the
most ID-like candidates, which are likely label noise or near-ID) and keep the next M = k.

Candidates: ``candidates`` x k items (the paper draws 400K per epoch and keeps 100K: x4),
capped at the pool. The score is the context's (MSP, or the extra class's with the
``extra_class`` loss, as ATOM's (K+1)-th class). Cost: the candidates' forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from bgresample.options import AT_LEAST_ONE, UNIT_RIGHT_OPEN, option
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector


def quantile_pick(scores: Tensor, quantile: float, m: int) -> Tensor:
    """Positions of ``m`` items: sort by ``scores`` from high (most ID-like) to low, skip the
    first round(quantile * C) of the C items (fewer where fewer than m would be left), keep the
    next m. Ties keep their order."""
    order = scores.argsort(descending=True, stable=True)
    skip = min(round(quantile * len(scores)), len(scores) - m)
    return order[skip : skip + m]


@register_selector
class NTOM(Selector):
    """Quantile-based outlier mining, refreshed every background epoch."""

    @dataclass
    class Options:
        candidates: float = option(
            4.0, AT_LEAST_ONE, "candidates scored per background epoch, x k (capped at the pool)"
        )
        quantile: float = option(0.125, UNIT_RIGHT_OPEN, "share of the most ID-like skipped")

    name = "ntom"
    refresh = "epoch"
    needs = frozenset({"model"})
    streams = {"candidates": 201}
    summary_line = "quantile outlier mining (Chen et al. 2021)"

    def __init__(self, ctx: SelectionContext, **options: float) -> None:
        super().__init__(ctx, **options)
        self.n_candidates = min(len(ctx.pool), round(self.opts.candidates * ctx.budget))
        self.quantile = self.opts.quantile

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        cand = self.candidates(self.n_candidates, "candidates", epoch)
        _, logits = self.outputs(model, cand)
        keep = quantile_pick(self.id_scores(logits), self.quantile, self.ctx.budget)
        return cand[keep].sort().values
