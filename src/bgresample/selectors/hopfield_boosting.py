"""``hopfield-boosting``: Hopfield Boosting's sampler as the authors' code runs it (Hofmann,
Schmid, Lehner, Klotz & Hochreiter, "Energy-based Hopfield Boosting for Out-of-Distribution
Detection", NeurIPS 2024; reference code github.com/ml-jku/hopfield-boosting, MIT). With
``finetune.loss=hopfield`` (the E_b loss on projected embeddings) and ``selectors.score=hopfield``
(or ``auto``: the Delta score) it is their method; the ``hopfield`` selector keeps only the
sampling rule.

What their code does for CIFAR-10 (``main.py``: ``evaluate_and_select_aux_data``, called once
before training and after every epoch; ``data/softmax_sampler.py``: ``SoftmaxBorderSampler``),
and what this selector does at the start of every ID epoch e (fine-tuning's steps
[e P, (e + 1) P), P = |D_in| // ID batch):

1. embed, in eval mode, the whole augmented ID training set through the backbone and the
   projection head: the stored ID patterns X (theirs: 390 x 128 = 49,920 of the 50,000 images,
   the loader dropping its last partial batch; here every ID training image);
2. embed as many pool items, drawn uniformly without replacement and augmented: the stored
   auxiliary patterns O (theirs: 20 loader batches of 2,500 = 50,000 ImageNet items);
3. embed ``candidates`` x P x n other uniformly drawn, augmented pool items (n the background
   batch; theirs: 400,000 = 8.01 x 390 x 128) and compute each one's boosting energy E_b
   against X and O (:func:`bgresample.scores.hopfield.border_energy`; memories read with
   log-mean-exp, rows L2-normalised; their ``BorderEnergy`` with ``mask_diagonale: false``);
4. draw P x n candidates with replacement with probability proportional to exp(beta E_b)
   (theirs: ``softmax(-beta * border_energy)`` with their border energy = -E_b - 2 log(2) /
   beta; beta = 4): the epoch's working set, one ID epoch's worth of draws.

The embeddings go through the model's projection head (``model.hopfield``, which
``finetune.loss=hopfield`` attaches) when it has one, else they are the penultimate features
(their ``projection_head: identity`` config). No gamma budget: each epoch's P x n draws may
hold up to that many distinct items (their sampler has no 10% rule either). The background
batches are drawn from the working set by the base class (``finetune.background_order=shuffle``
gives their loader's shuffled pass over it; the default draws uniformly with replacement).
Cost per ID epoch: |D_in| ID forward passes and |D_in| + candidates pool forward passes. All
randomness comes from this selector's streams at the epoch, and the embeddings are gathered
over ranks, so every torchrun rank makes the same choice.

:func:`store_patterns` embeds X and O the same way once more after the last epoch and stores
them in the model's head: the patterns the ``hopfield`` score reads (their ``ood_tester`` is
built from the patterns of the last ``evaluate_and_select_aux_data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bgresample.data.transforms import CropFlip
from bgresample.options import AT_LEAST_ONE, POSITIVE, option
from bgresample.rng import generator
from bgresample.runtime.batches import steps_per_epoch
from bgresample.runtime.forward import predict_embeddings, unwrap
from bgresample.scores.hopfield import chunked_border_energy
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector

#: The random streams of the patterns and the sampler (never renumber).
STREAMS = {
    "id_aug": 211,
    "aux": 212,
    "aux_aug": 213,
    "candidates": 214,
    "candidates_aug": 215,
    "sample": 216,
}


def projection_head(model: nn.Module) -> nn.Module | None:
    """The model's Hopfield projection head (``model.hopfield``), or None."""
    return getattr(unwrap(model), "hopfield", None)


def hopfield_patterns(model: nn.Module, ctx: SelectionContext, epoch: int) -> tuple[Tensor, Tensor]:
    """The stored patterns of ID epoch ``epoch``: X, the projected embeddings of every ID
    training image, and O, those of as many pool items (capped at the pool) drawn uniformly
    without replacement, each image augmented as fine-tuning augments it (crop, and flip where
    the context says); model and head in eval mode; float32, CPU."""
    head, n = projection_head(model), len(ctx.train)
    aug = CropFlip.draw(n, generator(ctx.seed, STREAMS["id_aug"], epoch), flip=ctx.flip)
    x = predict_embeddings(model, head, ctx.train, ctx.accel, ctx.score_batch_size, None, aug)
    pick = torch.randperm(len(ctx.pool), generator=generator(ctx.seed, STREAMS["aux"], epoch))
    aux = pick[:n]
    gen = generator(ctx.seed, STREAMS["aux_aug"], epoch)
    aug = CropFlip.draw(len(aux), gen, flip=ctx.background_flip)
    o = predict_embeddings(model, head, ctx.pool, ctx.accel, ctx.score_batch_size, aux, aug)
    return x, o


def store_patterns(model: nn.Module, ctx: SelectionContext, epoch: int) -> int:
    """Embed the patterns of ID epoch ``epoch`` (:func:`hopfield_patterns`; after fine-tuning,
    ``epoch`` = the epochs trained) and store them in the model's projection head for the
    ``hopfield`` score. Returns the forward passes it took. ValueError for a model without a
    :class:`bgresample.losses.HopfieldHead`."""
    head = projection_head(model)
    if head is None or not hasattr(head, "store"):
        raise ValueError(
            "the model has no Hopfield projection head to store patterns in: fine-tune with "
            "finetune.loss=hopfield, or add one with bgresample.losses.add_projection_head"
        )
    x, o = hopfield_patterns(model, ctx, epoch)
    head.store(x, o)
    return len(x) + len(o)


@register_selector
class HopfieldBoostingSampler(Selector):
    """Candidates drawn by exp(beta E_b) against freshly embedded ID and auxiliary patterns,
    one ID epoch's worth, refreshed every ID epoch."""

    @dataclass
    class Options:
        candidates: float = option(
            8.0,
            AT_LEAST_ONE,
            "candidates scored per ID epoch, x the draws of one ID epoch (capped at the pool)",
        )
        beta: float = option(4.0, POSITIVE, "inverse temperature (the authors' CIFAR one)")

    name = "hopfield-boosting"
    refresh = "epoch"
    needs = frozenset({"model", "features"})
    streams = STREAMS
    summary_line = "Hopfield Boosting's sampler, per ID epoch, as their code (Hofmann et al.)"

    def __init__(self, ctx: SelectionContext, **options: float) -> None:
        super().__init__(ctx, **options)
        if ctx.id_batch_size is None:
            raise ValueError(
                "selector hopfield-boosting refreshes once per ID epoch: its SelectionContext "
                "needs id_batch_size (fine-tuning's ID batch size)"
            )
        self.period = steps_per_epoch(len(ctx.train), ctx.id_batch_size)
        self.draws = self.period * ctx.batch_size
        self.n_candidates = min(len(ctx.pool), round(self.opts.candidates * self.draws))
        self.beta = self.opts.beta

    @property
    def refresh_steps(self) -> int:
        """One ID epoch: |D_in| // ID batch steps."""
        return self.period

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        ctx = self.ctx
        x, o = hopfield_patterns(model, ctx, epoch)
        self.forwards["id"] += len(x)
        self.forwards["during"] += len(o)
        cand = self.candidates(self.n_candidates, "candidates", epoch)
        gen = self.rng("candidates_aug", epoch)
        aug = CropFlip.draw(len(cand), gen, flip=ctx.background_flip)
        head = projection_head(model)
        emb = predict_embeddings(model, head, ctx.pool, ctx.accel, ctx.score_batch_size, cand, aug)
        self.forwards["during"] += len(cand)
        dev = ctx.accel.device
        e = chunked_border_energy(emb.to(dev), x.to(dev), o.to(dev), self.beta)
        p = torch.softmax(self.beta * e.double(), dim=0).cpu()
        draws = torch.multinomial(
            p, self.draws, replacement=True, generator=self.rng("sample", epoch)
        )
        return cand[draws].sort().values
