"""``hopfield``: boundary outliers sampled by modern Hopfield energy (Hofmann, Schmid, Lehner,
Klotz & Hochreiter, "Energy-based Hopfield Boosting for Out-of-Distribution Detection",
NeurIPS 2024; reference code github.com/ml-jku/hopfield-boosting, MIT).

The method. Embeddings xi live on the unit sphere. The stored patterns are embeddings of ID
images (X) and of auxiliary outliers (O). With lse(beta, z) = beta^-1 log sum_j exp(beta z_j),
the paper's boosting energy (Sec. 3) is

    E_b(xi; X, O) = -2 lse(beta, (X || O)^T xi) + lse(beta, X^T xi) + lse(beta, O^T xi),

which is largest on the ID/outlier boundary, where xi is as similar to X as to O. Each epoch
the authors embed the whole ID training set (X) and as many AUX items (O), score a large set of
AUX candidates (400K for CIFAR-10) and draw, with replacement, one ID epoch's worth of AUX
samples with probability proportional to exp(beta E_b) (their ``SoftmaxBorderSampler``:
``softmax(-beta * border_energy)``, where their ``BorderEnergy`` is -E_b up to a constant). The
weights are recomputed from scratch once per training epoch (and once before the first).
Their reference code reads each memory with log-mean-exp instead of log-sum-exp, and so does
:func:`boundary_energy`: the result equals E_b exactly when |X| = |O|, and weighs the two
memories equally when their sizes differ.

Closed form. With Delta = lme(beta, X^T xi) - lme(beta, O^T xi) (the ID-vs-AUX score the
authors also use to detect OOD inputs), E_b = -(2 / beta) log(2 cosh(beta Delta / 2)), hence
exp(beta E_b) = sigma(beta Delta) sigma(-beta Delta): a bump of height 1/4 at Delta = 0 (the
boundary) that decays like exp(-beta |Delta|) on either side.

Here (one background epoch, refreshed like ``ntom`` and ``poem``):

1. draw ``candidates`` x k pool items uniformly (capped at the pool), k = round(gamma N), and
   embed them with the current model (their forward passes counted as ``during``);
2. embed min(|ID train|, #candidates) uniformly drawn ID training images (counted as ``id``):
   the stored ID patterns X, as many as the AUX ones, like the authors' |X| = |O|;
3. the candidates' own embeddings are the stored AUX patterns O (each candidate's own term is
   left out of its O-memory; in the authors' code a candidate is rarely its own memory);
4. the working set is k draws *with replacement* from the candidates with probability
   proportional to exp(beta E_b) (:func:`boosting_probabilities`).

Budget: the working set is a multiset of k draws, so at most k distinct items are eligible in a
background epoch, as for every selector; each background batch is drawn uniformly from it by
the base class, so every background draw is marginally a draw from the (empirical) boosting
distribution, the same number of draws as every other selector. All randomness comes from the
streams ``candidates``, ``id`` and ``sample`` at the epoch, and the embeddings are gathered over
ranks, so every torchrun rank makes the same choice.

Simplifications (documented differences from the paper; ``hopfield-boosting`` with
``finetune.loss=hopfield`` is the method as the authors' code runs it):

- embeddings are the model's L2-normalised penultimate features; the authors add a 2-layer
  projection head (512 -> 256 -> 128) and take the ID patterns from augmented images;
- X is a subsample of the ID training set (as many as the candidates), not all of it;
- the weights are recomputed once per background epoch (k draws), not once per ID epoch;
- the loss on the sampled outliers is this project's ``finetune.loss`` (uniformity / OE by
  default). The authors train with cross entropy + 0.5 x L_OOD, where L_OOD is the mean E_b of
  the ID and AUX embeddings of the mini-batch with that mini-batch's embeddings as X and O
  (``finetune.loss=hopfield``), and detect OOD inputs with Delta (the ``hopfield`` score)
  rather than a logit score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bgresample.options import AT_LEAST_ONE, POSITIVE, option
from bgresample.scores.hopfield import border_energy
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector


def boundary_energy(
    queries: Tensor,
    id_patterns: Tensor,
    aux_patterns: Tensor,
    beta: float,
    exclude_self: bool = False,
) -> Tensor:
    """The paper's boosting energy E_b(xi; X, O) (Sec. 3) of each row xi of ``queries`` with
    stored ID patterns X = ``id_patterns`` and AUX patterns O = ``aux_patterns``, in float64:
    :func:`bgresample.scores.hopfield.border_energy` (rows L2-normalised, each memory read with
    log-mean-exp as in the authors' code), so E_b = -(2 / beta) log(2 cosh(beta Delta / 2))
    with Delta = lme(beta, X^T xi) - lme(beta, O^T xi). Always < 0; its maximum
    -2 log(2) / beta is on the boundary Delta = 0. ``exclude_self``: the queries are the AUX
    patterns (same rows), and each query's own term is left out of its O-memory (ignored when
    there is only one pattern).
    """
    return border_energy(
        queries.double(), id_patterns.double(), aux_patterns.double(), beta, exclude_self
    )


def boosting_probabilities(
    queries: Tensor,
    id_patterns: Tensor,
    aux_patterns: Tensor,
    beta: float,
    exclude_self: bool = False,
) -> Tensor:
    """Hopfield Boosting's sampling distribution over the AUX ``queries``: p(xi) proportional
    to exp(beta E_b(xi; X, O)) (:func:`boundary_energy`), i.e. softmax(beta E_b) over the rows,
    equivalently proportional to sigma(beta Delta) sigma(-beta Delta): most mass on the
    candidates closest to the ID/outlier boundary."""
    e = boundary_energy(queries, id_patterns, aux_patterns, beta, exclude_self)
    return torch.softmax(beta * e, dim=0)


@register_selector
class HopfieldBoosting(Selector):
    """Candidates sampled by their Hopfield boosting weight, refreshed every background epoch."""

    @dataclass
    class Options:
        candidates: float = option(
            4.0, AT_LEAST_ONE, "candidates embedded per background epoch, x k (capped)"
        )
        beta: float = option(4.0, POSITIVE, "inverse temperature (the authors' CIFAR one)")

    name = "hopfield"
    refresh = "epoch"
    needs = frozenset({"model", "features"})
    streams = {"candidates": 208, "id": 209, "sample": 210}
    summary_line = "boundary outliers sampled by Hopfield energy (Hofmann et al. 2024)"

    def __init__(self, ctx: SelectionContext, **options: float) -> None:
        super().__init__(ctx, **options)
        self.n_candidates = min(len(ctx.pool), round(self.opts.candidates * ctx.budget))
        self.beta = self.opts.beta

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        ctx = self.ctx
        cand = self.candidates(self.n_candidates, "candidates", epoch)
        aux, _ = self.outputs(model, cand)
        n_id = min(len(ctx.train), len(cand))
        gen = self.rng("id", epoch)
        id_idx = torch.randperm(len(ctx.train), generator=gen)[:n_id]
        id_feats, _ = self.outputs(model, id_idx, ctx.train)
        p = boosting_probabilities(aux, id_feats, aux, self.beta, exclude_self=True)
        gen = self.rng("sample", epoch)
        draws = torch.multinomial(p, ctx.budget, replacement=True, generator=gen)
        return cand[draws].sort().values
