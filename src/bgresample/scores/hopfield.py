"""Modern-Hopfield energies of Hopfield Boosting (Hofmann, Schmid, Lehner, Klotz & Hochreiter,
"Energy-based Hopfield Boosting for Out-of-Distribution Detection", NeurIPS 2024; reference code
github.com/ml-jku/hopfield-boosting, MIT), and its OOD score Delta.

Embeddings xi live on the unit sphere; the stored patterns are embeddings of ID images (X) and
of auxiliary outliers (O). Each memory is read with the log-mean-exp

    lme(beta, z) = beta^-1 log( (1/n) sum_j exp(beta z_j) )

(their ``util.logmeanexp``; the paper's eqs. write log-sum-exp, which equals it up to the
constant beta^-1 log n). With Delta(xi) = lme(beta, X^T xi) - lme(beta, O^T xi):

- the score (their ``OneSidedEnergy`` negated, the detector of ``HopfieldTrainer.ood_tester``)
  is Delta itself: high for inputs closer to the ID memory than to the outlier memory;
- the boosting (border) energy, the paper's E_b(xi; X, O) = -2 lse(beta, (X || O)^T xi)
  + lse(beta, X^T xi) + lse(beta, O^T xi) (Sec. 3) with lme, equals
  -(2 / beta) log(2 cosh(beta Delta / 2)) = (log sigma(beta Delta) + log sigma(-beta Delta)) /
  beta: largest, -2 log(2) / beta, on the boundary Delta = 0. Their ``BorderEnergy`` computes
  -E_b - 2 log(2) / beta (the same up to sign and a constant).

Every row (queries and patterns) is L2-normalised first (their ``Energy(normalize=True)``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The authors' inverse temperature for CIFAR-10 and CIFAR-100.
DEFAULT_BETA = 4.0


def _delta(
    queries: Tensor,
    id_patterns: Tensor,
    aux_patterns: Tensor,
    beta: float,
    exclude_self: bool,
    normalized: bool = False,
) -> Tensor:
    """Delta of each query, in the inputs' dtype. ``normalized``: the patterns' rows already
    have unit norm (a fitted state's), so they are not normalised again. beta is folded into
    the queries, and each memory's size (less the left-out self term) is counted, not read
    from the similarities: one pass over each (queries x patterns) block."""
    q = beta * F.normalize(queries, dim=1)
    x = id_patterns if normalized else F.normalize(id_patterns, dim=1)
    o = aux_patterns if normalized else F.normalize(aux_patterns, dim=1)
    s_aux, n_aux = q @ o.T, len(o)
    if exclude_self and len(o) > 1:
        if s_aux.shape[0] != s_aux.shape[1]:
            raise ValueError("exclude_self needs the queries to be the AUX patterns")
        s_aux.fill_diagonal_(-torch.inf)
        n_aux -= 1
    lse = torch.logsumexp(q @ x.T, dim=-1) - torch.logsumexp(s_aux, dim=-1)
    return (lse + (math.log(n_aux) - math.log(len(x)))) / beta


def hopfield_delta(
    queries: Tensor, id_patterns: Tensor, aux_patterns: Tensor, beta: float = DEFAULT_BETA
) -> Tensor:
    """Delta(xi) = lme(beta, X^T xi) - lme(beta, O^T xi) of each row xi of ``queries``, with
    ``id_patterns`` X and ``aux_patterns`` O (rows L2-normalised), in the inputs' dtype."""
    return _delta(queries, id_patterns, aux_patterns, beta, exclude_self=False)


def border_energy(
    queries: Tensor,
    id_patterns: Tensor,
    aux_patterns: Tensor,
    beta: float = DEFAULT_BETA,
    exclude_self: bool = False,
) -> Tensor:
    """The boosting energy E_b(xi; X, O) (paper Sec. 3, memories read with lme) of each row xi
    of ``queries``: (log sigma(beta Delta) + log sigma(-beta Delta)) / beta, in the inputs'
    dtype, differentiable in all three inputs. Always < 0, largest (-2 log(2) / beta) on the
    boundary Delta = 0. ``exclude_self``: the queries are the AUX patterns (same rows) and each
    query's own term is left out of its O-memory (ignored when there is only one pattern)."""
    return _border(_delta(queries, id_patterns, aux_patterns, beta, exclude_self), beta)


def _border(delta: Tensor, beta: float) -> Tensor:
    return (F.logsigmoid(beta * delta) + F.logsigmoid(-beta * delta)) / beta


def _chunked_delta(queries: Tensor, x: Tensor, o: Tensor, beta: float, chunk: int) -> Tensor:
    """Delta of ``chunk`` queries at a time against patterns ``x``, ``o`` of unit-norm rows."""
    parts = [
        _delta(queries[i : i + chunk], x, o, beta, False, True)
        for i in range(0, len(queries), chunk)
    ]
    return torch.cat(parts) if parts else queries.new_empty(0)


def chunked_border_energy(
    queries: Tensor, id_patterns: Tensor, aux_patterns: Tensor, beta: float, chunk: int = 1024
) -> Tensor:
    """:func:`border_energy` of ``chunk`` queries at a time (memory: chunk x (|X| + |O|)), the
    patterns normalised once."""
    x, o = F.normalize(id_patterns, dim=1), F.normalize(aux_patterns, dim=1)
    return _border(_chunked_delta(queries, x, o, beta, chunk), beta)


@dataclass(frozen=True)
class HopfieldState:
    """The fitted Delta score: the projection ``head`` (features -> embeddings, eval mode), the
    normalised stored patterns ``id_patterns`` (X) and ``aux_patterns`` (O), float32, and the
    ``beta`` they were stored with."""

    head: nn.Module
    id_patterns: Tensor
    aux_patterns: Tensor
    beta: float

    def to(self, device: torch.device | str) -> HopfieldState:
        return HopfieldState(
            self.head.to(device),
            self.id_patterns.to(device),
            self.aux_patterns.to(device),
            self.beta,
        )


def fit_hopfield(features: Tensor, labels: Tensor | None, model: nn.Module) -> HopfieldState:
    """The Delta score of ``model``: the patterns it stores (``model.hopfield``, a
    :class:`bgresample.losses.HopfieldHead` holding the projection head, beta and the projected
    embeddings of the augmented ID training set and of as many auxiliary items, stored after
    fine-tuning as the authors' code stores ``id.ckpt`` / ``ood.ckpt``). ``features`` and
    ``labels`` (the ID training set's, what every features score gets) are not used: the ID
    memory is the stored one. ValueError for a model without stored patterns."""
    memory = getattr(model, "hopfield", None)
    if memory is None or not getattr(memory, "has_patterns", False):
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(
            f"the hopfield score reads the patterns its model stores; model {name} has none "
            "(store them with bgresample.selectors.hopfield_boosting.store_patterns, or "
            "HopfieldHead.store)"
        )
    head = copy.deepcopy(memory.head).eval()
    for p in head.parameters():
        p.requires_grad_(False)
    x = F.normalize(memory.id_patterns.detach().float(), dim=1)
    o = F.normalize(memory.aux_patterns.detach().float(), dim=1)
    return HopfieldState(head, x, o, float(memory.beta))


@torch.no_grad()
def hopfield(
    features: Tensor, state: HopfieldState, beta: float | None = None, chunk: int = 512
) -> Tensor:
    """Delta = lme(beta, X^T xi) - lme(beta, O^T xi) of the projected penultimate ``features``
    xi = head(f) against the stored patterns (float32; higher = more ID), ``chunk`` queries at a
    time (memory: chunk x (|X| + |O|) floats). ``beta``: the stored one by default."""
    b = state.beta if beta is None else beta
    z = state.head(features.float())
    return _chunked_delta(z, state.id_patterns, state.aux_patterns, b, chunk)
