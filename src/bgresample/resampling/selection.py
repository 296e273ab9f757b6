"""From learned weights to a background subset of ratio gamma, and its CSV manifest.

Methods (``METHODS``): "authors" (the authors' code: keep i independently with probability
min(1, gamma w_i / mean w), size about gamma N), "weighted" (exactly k items drawn without
replacement, proportionally to w), "topk" (the k largest w), "random" (a uniform subset of k,
the paper's Random baseline) and "full" (the whole pool). k = max(1, round(gamma N)).
Every selector returns sorted int64 pool indices.
"""

import csv
import io
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path

import torch
from torch import Tensor

from bgresample.files import atomic_write_text

METHODS = ("authors", "weighted", "topk", "random", "full")
_WEIGHTED_METHODS = ("authors", "weighted", "topk")
MANIFEST_HEADER = ("index", "weight", "family", "source")


def subset_size(n: int, gamma: float) -> int:
    """k = round(gamma N), at least 1."""
    return max(1, round(gamma * n))


def select_authors(w: Tensor, gamma: float, generator: torch.Generator | None = None) -> Tensor:
    """Keep i independently with probability min(1, gamma w_i / mean(w))."""
    w = w.detach().double()
    keep_prob = (gamma * w / w.mean()).clamp_(max=1.0)
    u = torch.rand(w.numel(), dtype=torch.float64, device=w.device, generator=generator)
    return torch.nonzero(u < keep_prob).flatten()


def select_weighted(w: Tensor, gamma: float, generator: torch.Generator | None = None) -> Tensor:
    """Exactly k items without replacement, successive draws proportional to w.

    Efraimidis-Spirakis in Gumbel form: the k largest keys log w_i + Gumbel_i.
    """
    w = w.detach().double()
    u = torch.rand(w.numel(), dtype=torch.float64, device=w.device, generator=generator)
    keys = w.log() - (-u.log()).log()
    top = torch.topk(keys, subset_size(w.numel(), gamma)).indices
    return top.sort().values


def select_topk(w: Tensor, gamma: float) -> Tensor:
    """The k largest weights; among equal weights the lower index wins."""
    order = torch.sort(w.detach(), descending=True, stable=True).indices
    return order[: subset_size(w.numel(), gamma)].sort().values


def select_random(n: int, gamma: float, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random subset of exactly k of the n pool items."""
    return torch.randperm(n, generator=generator)[: subset_size(n, gamma)].sort().values


def select_full(n: int) -> Tensor:
    """All n pool items."""
    return torch.arange(n, dtype=torch.int64)


def select(
    method: str,
    *,
    n: int,
    gamma: float,
    weights: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Validate the arguments and run selector ``method`` over a pool of n items.

    ``weights`` (length n, positive) are needed by "authors", "weighted" and "topk";
    "full" ignores gamma.
    """
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; valid: {', '.join(METHODS)}")
    if isinstance(gamma, bool) or not isinstance(gamma, Real) or not 0 < gamma <= 1:
        raise ValueError(f"subset ratio gamma must be a number in (0, 1], got {gamma!r}")
    if n < 1:
        raise ValueError(f"the background pool is empty (n = {n}); nothing to select")
    if method in _WEIGHTED_METHODS:
        if weights is None:
            raise ValueError(
                f"selection method {method!r} needs learned weights (run resampling first); "
                "'random' and 'full' need none"
            )
        if weights.ndim != 1 or weights.numel() != n:
            raise ValueError(
                f"weights have shape {tuple(weights.shape)} but the pool has {n} items"
            )
        if not bool(torch.isfinite(weights).all()) or not bool((weights > 0).all()):
            raise ValueError("weights must be finite and positive")
    if method == "authors":
        return select_authors(weights, gamma, generator)
    if method == "weighted":
        return select_weighted(weights, gamma, generator)
    if method == "topk":
        return select_topk(weights, gamma)
    if method == "random":
        return select_random(n, gamma, generator)
    return select_full(n)


def write_manifest(
    path: str | os.PathLike,
    indices: Tensor,
    weights: Tensor | None = None,
    family: Sequence[str] | None = None,
    source: Sequence[str] | Mapping[int, str] | None = None,
) -> None:
    """CSV ``index,weight,family,source``, one row per selected index.

    ``weights``, ``family`` and ``source`` are per pool item (indexed by pool index; ``source``
    may map only the selected indices); a column is left empty when its argument is None.
    Written atomically.
    """
    indices = indices.detach().cpu()
    index_list = indices.tolist()
    if weights is None:
        weight_text = [""] * len(index_list)
    else:
        weight_text = [repr(x) for x in weights.detach().double().cpu()[indices].tolist()]
    rows = [list(MANIFEST_HEADER)]
    for i, weight in zip(index_list, weight_text, strict=True):
        rows.append(
            [
                str(i),
                weight,
                "" if family is None else family[i],
                "" if source is None else source[i],
            ]
        )
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a manifest: dict(indices, weights, family, source), one entry per row.

    ``weights`` is a float64 tensor and ``family``/``source`` are lists, or None where the
    column is empty in every row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != MANIFEST_HEADER:
            raise ValueError(f"{path}: header must be {','.join(MANIFEST_HEADER)}, got {header}")
        rows = list(reader)
    indices, weights, family, source = [], [], [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(MANIFEST_HEADER):
            raise ValueError(f"{path}:{line}: expected 4 fields, got {len(row)}")
        try:
            indices.append(int(row[0]))
            weights.append(float(row[1]) if row[1] else math.nan)
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: bad index or weight ({exc})") from exc
        family.append(row[2])
        source.append(row[3])
    has_weights = any(row[1] for row in rows)
    return {
        "indices": torch.tensor(indices, dtype=torch.int64),
        "weights": torch.tensor(weights, dtype=torch.float64) if has_weights else None,
        "family": family if any(family) else None,
        "source": source if any(source) else None,
    }


def composition(indices: Tensor, family: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Share and count of each family in the pool and in the subset ``indices``.

    ``family`` is per pool item. Families are listed in sorted order.
    """
    pool = Counter(family)
    subset = Counter(family[i] for i in indices.tolist())
    n_pool, n_subset = len(family), max(indices.numel(), 1)
    return {
        name: {
            "pool": pool[name] / n_pool,
            "subset": subset[name] / n_subset,
            "pool_count": pool[name],
            "subset_count": subset[name],
        }
        for name in sorted(pool)
    }
