"""``dos``: diverse outlier sampling (Jiang, Cheng, Chen, Wang & Wei, "DOS: Diverse Outlier
Sampling for Out-of-Distribution Detection", ICLR 2024).

Every batch: take a candidate set, cluster its L2-normalised penultimate features with k-means
into as many clusters as the background batch has items, and keep from each cluster its most
ID-like candidate (highest score: MSP, or the extra class's with the ``extra_class`` loss), the
most informative outlier of that region of feature space. Clusters left empty by k-means are
made up by the most ID-like candidates not yet kept.

Budget: the candidates (``candidates`` x batch size items, without replacement) are drawn from
a uniformly random k-subset of the pool drawn anew each background epoch, so no more than k
distinct items are eligible per background epoch, as for every selector. Cost: the candidates'
forward passes, every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.options import AT_LEAST_ONE, POSITIVE_INT, option
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector


def _sq_dist(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances between the rows of ``x`` and of ``c``."""
    d2 = x.square().sum(1, keepdim=True) - 2 * x @ c.T + c.square().sum(1)
    return d2.clamp_min_(0)


def kmeans(x: Tensor, k: int, generator: torch.Generator, iters: int = 10) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means of the rows of ``x`` with k-means++ seeding; returns (centroids, the
    cluster of each row). A cluster that loses all its rows keeps its centroid."""
    n = len(x)
    first = int(torch.randint(n, (1,), generator=generator))
    seeds, d2 = [first], _sq_dist(x, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        if float(d2.sum()) > 0:
            nxt = int(torch.multinomial(d2, 1, generator=generator))
        else:
            nxt = int(torch.randint(n, (1,), generator=generator))
        seeds.append(nxt)
        d2 = torch.minimum(d2, _sq_dist(x, x[nxt : nxt + 1])[:, 0])
    centroids = x[seeds].clone()
    assign = _sq_dist(x, centroids).argmin(dim=1)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        new = _sq_dist(x, centroids).argmin(dim=1)
        if torch.equal(new, assign):
            break
        assign = new
    return centroids, assign


def diverse_pick(
    features: Tensor, scores: Tensor, k: int, generator: torch.Generator, iters: int = 10
) -> Tensor:
    """Positions of k items: the highest-scoring row of each of k k-means clusters of the
    normalised ``features``, completed by the highest-scoring rows not kept (and repeated
    cyclically when there are fewer than k rows)."""
    n_clusters = min(k, len(features))
    _, assign = kmeans(F.normalize(features.double(), dim=1), n_clusters, generator, iters)
    order = scores.argsort(descending=True, stable=True)
    first = torch.zeros(n_clusters, dtype=torch.bool)
    kept = torch.zeros(len(scores), dtype=torch.bool)
    for pos in order.tolist():
        c = int(assign[pos])
        if not first[c]:
            first[c] = kept[pos] = True
    picks = torch.cat([order[kept[order]], order[~kept[order]]])[:k]
    return picks.repeat(-(-k // len(picks)))[:k]


@register_selector
class DOS(Selector):
    """One most-ID-like candidate per k-means cluster, every batch."""

    @dataclass
    class Options:
        candidates: float = option(
            4.0, AT_LEAST_ONE, "candidates clustered per batch, x background_batch_size"
        )
        kmeans_iters: int = option(10, POSITIVE_INT, "k-means iterations per batch")

    name = "dos"
    refresh = "batch"
    needs = frozenset({"model", "features"})
    streams = {"eligible": 205, "candidates": 206, "kmeans": 207}
    summary_line = "one most-ID-like candidate per k-means cluster (Jiang et al. 2024)"

    def __init__(self, ctx: SelectionContext, **options: float) -> None:
        super().__init__(ctx, **options)
        self.n_candidates = min(ctx.budget, round(self.opts.candidates * ctx.batch_size))
        self.kmeans_iters = self.opts.kmeans_iters

    def select_batch(self, model: nn.Module, step: int) -> Tensor:
        ctx = self.ctx
        epoch = step // ctx.epoch_steps
        if epoch != self.epoch:
            self.working = self.candidates(ctx.budget, "eligible", epoch)
            self.epoch = epoch
        gen = self.rng("candidates", step)
        cand = self.working[torch.randperm(len(self.working), generator=gen)[: self.n_candidates]]
        feats, logits = self.outputs(model, cand)
        pos = diverse_pick(
            feats,
            self.id_scores(logits),
            ctx.batch_size,
            self.rng("kmeans", step),
            self.kmeans_iters,
        )
        return cand[pos]
