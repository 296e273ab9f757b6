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

from torch import Tensor, nn

from bgresample.rng import Stream
from bgresample.selectors.base import SelectionContext, Selector


def quantile_pick(scores: Tensor, quantile: float, m: int) -> Tensor:
    """Positions of ``m`` items: sort by ``scores`` from high (most ID-like) to low, skip the
    first round(quantile * C) of the C items (fewer where fewer than m would be left), keep the
    next m. Ties keep their order."""
    order = scores.argsort(descending=True, stable=True)
    skip = min(round(quantile * len(scores)), len(scores) - m)
    return order[skip : skip + m]


class NTOM(Selector):
    """Quantile-based outlier mining, refreshed every background epoch."""

    name = "ntom"
    refresh = "epoch"

    def __init__(
        self, ctx: SelectionContext, candidates: float = 4.0, quantile: float = 0.125
    ) -> None:
        super().__init__(ctx)
        self.n_candidates = min(len(ctx.pool), round(candidates * ctx.budget))
        self.quantile = quantile

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        cand = self.candidates(self.n_candidates, Stream.NTOM_CANDIDATES, epoch)
        _, logits = self.outputs(model, cand)
        keep = quantile_pick(self.id_scores(logits), self.quantile, self.ctx.budget)
        return cand[keep].sort().values
