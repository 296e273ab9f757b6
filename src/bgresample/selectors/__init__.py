"""Ways of choosing the background data that fine-tuning trains on, behind one interface
(:class:`~bgresample.selectors.base.Selector`; the budget and cost rules are in
:mod:`bgresample.selectors.base`).

=============  =======  ====================================================================
name           refresh  what
=============  =======  ====================================================================
full           once     the whole pool (the paper's Full)
random         once     a uniform k-subset (the paper's Random)
resampled      once     Algorithm 1's weights + the authors' rule (the paper's method)
topk-weight    once     the k largest learned weights
ntom           epoch    quantile outlier mining (Chen et al. 2021)
poem           epoch    posterior-sampled boundary outliers (Ming et al. 2022)
dos            batch    one most-ID-like candidate per k-means cluster (Jiang et al. 2024)
=============  =======  ====================================================================
"""

from __future__ import annotations

import inspect
from typing import Any

from bgresample.errors import UserError
from bgresample.selectors.base import Refresh, SelectionContext, Selector
from bgresample.selectors.dos import DOS
from bgresample.selectors.full import Full
from bgresample.selectors.ntom import NTOM
from bgresample.selectors.poem import POEM
from bgresample.selectors.random_subset import RandomSubset
from bgresample.selectors.resampled import Resampled
from bgresample.selectors.topk_weight import TopKWeight

SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls for cls in (Full, RandomSubset, Resampled, TopKWeight, NTOM, POEM, DOS)
}
#: Selectors that need the weights learned by Algorithm 1.
WEIGHT_SELECTORS = ("resampled", "topk-weight")


def check_names(names: list[str]) -> None:
    """Raise a UserError naming the valid selectors if any of ``names`` is unknown."""
    bad = [n for n in names if n not in SELECTORS]
    if bad:
        raise UserError(f"unknown selector(s) {', '.join(bad)}; valid: {', '.join(SELECTORS)}")


def build_selector(name: str, ctx: SelectionContext, options: dict[str, Any]) -> Selector:
    """Selector ``name`` over ``ctx``; ``options`` are the ``selectors`` config section, whose
    sub-section of the same name (if any) holds its keyword arguments."""
    check_names([name])
    cls, kwargs = SELECTORS[name], dict(options.get(name) or {})
    try:
        inspect.signature(cls).bind(ctx, **kwargs)
    except TypeError as e:
        raise UserError(f"selectors.{name}: {e}") from None
    return cls(ctx, **kwargs)


__all__ = [
    "DOS",
    "NTOM",
    "POEM",
    "SELECTORS",
    "WEIGHT_SELECTORS",
    "Full",
    "RandomSubset",
    "Refresh",
    "Resampled",
    "SelectionContext",
    "Selector",
    "TopKWeight",
    "build_selector",
    "check_names",
]
