"""Ways of choosing the background data that fine-tuning trains on, behind one interface
(:class:`~bgresample.selectors.base.Selector`; the budget and cost rules are in
:mod:`bgresample.selectors.base`). :func:`build_selector` is the one place that decides which
background a variant trains on, for ``run``, ``compare-selectors`` and ``finetune`` alike.

=============  =======  ====================================================================
name           refresh  what
=============  =======  ====================================================================
none           -        no background data (the paper's None): cross entropy only
full           once     the whole pool (the paper's Full)
random         once     a uniform k-subset (the paper's Random)
resampled      once     Algorithm 1's weights + the authors' rule (the paper's method)
topk-weight    once     the k largest learned weights
ntom           epoch    quantile outlier mining (Chen et al. 2021)
poem           epoch    posterior-sampled boundary outliers (Ming et al. 2022)
dos            batch    one most-ID-like candidate per k-means cluster (Jiang et al. 2024)
hopfield       epoch    boundary outliers sampled by Hopfield energy (Hofmann et al. 2024)
=============  =======  ====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bgresample.selectors.base import Refresh, SelectionContext, Selector
from bgresample.selectors.dos import DOS
from bgresample.selectors.fixed import FixedSubset
from bgresample.selectors.full import Full
from bgresample.selectors.hopfield import HopfieldBoosting
from bgresample.selectors.ntom import NTOM
from bgresample.selectors.poem import POEM
from bgresample.selectors.random_subset import RandomSubset
from bgresample.selectors.resampled import Resampled
from bgresample.selectors.topk_weight import TopKWeight

#: The variant without background data.
NONE = "none"

SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls
    for cls in (
        Full,
        RandomSubset,
        Resampled,
        TopKWeight,
        NTOM,
        POEM,
        DOS,
        HopfieldBoosting,
    )
}
#: Selectors that need the weights learned by Algorithm 1.
WEIGHT_SELECTORS = ("resampled", "topk-weight")


def build_selector(
    name: str, ctx: SelectionContext, options: Mapping[str, Mapping[str, Any]] | None = None
) -> Selector | None:
    """The selector of variant ``name`` over ``ctx`` (None for ``none``: no background);
    ``options[name]``, if any, holds its keyword arguments (checked by the typed config)."""
    if name == NONE:
        return None
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; valid: {', '.join([NONE, *SELECTORS])}")
    return SELECTORS[name](ctx, **dict((options or {}).get(name) or {}))


__all__ = [
    "DOS",
    "NONE",
    "NTOM",
    "POEM",
    "SELECTORS",
    "WEIGHT_SELECTORS",
    "FixedSubset",
    "Full",
    "HopfieldBoosting",
    "RandomSubset",
    "Refresh",
    "Resampled",
    "SelectionContext",
    "Selector",
    "TopKWeight",
    "build_selector",
]
