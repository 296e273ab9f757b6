"""Ways of choosing the background data that fine-tuning trains on, behind one interface
(:class:`~bgresample.selectors.base.Selector`; the budget and cost rules are in
:mod:`bgresample.selectors.base`), each registered by
:func:`~bgresample.selectors.registry.register_selector` in its own file.
:func:`build_selector` is the one place that decides which background a variant trains on, for
``run``, ``compare-selectors`` and ``finetune`` alike. The built-in selectors:

=================  =======  ============================================================
name               refresh  what
=================  =======  ============================================================
none               -        no background data (the paper's None): cross entropy only
full               once     the whole pool (the paper's Full)
random             once     a uniform k-subset (the paper's Random)
resampled          once     Algorithm 1's weights + the authors' rule (the paper's method)
topk-weight        once     the k largest learned weights
ntom               epoch    quantile outlier mining (Chen et al. 2021)
poem               epoch    posterior-sampled boundary outliers (Ming et al. 2022)
dos                batch    one most-ID-like candidate per k-means cluster (Jiang et al. 2024)
hopfield           epoch    boundary outliers sampled by Hopfield energy (Hofmann et al. 2024)
hopfield-boosting  epoch    that sampler as their code runs it, once per ID epoch
=================  =======  ============================================================

A variant ``SELECTOR+LOSS`` (:data:`CELL_SEP`, :func:`variant_parts`) is a study cell: the
selector's background fine-tuned with ``finetune.loss=LOSS`` and scored with that loss's score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Imported for their side effect: each module registers its selector, in this order (that of
# the config sections, the help texts and the default variant lists).
# isort: off
from bgresample.selectors import full  # noqa: F401
from bgresample.selectors import random_subset  # noqa: F401
from bgresample.selectors import resampled  # noqa: F401
from bgresample.selectors import topk_weight  # noqa: F401
from bgresample.selectors import ntom  # noqa: F401
from bgresample.selectors import poem  # noqa: F401
from bgresample.selectors import dos  # noqa: F401
from bgresample.selectors import hopfield  # noqa: F401
from bgresample.selectors import hopfield_boosting  # noqa: F401

# isort: on
from bgresample.selectors.base import Refresh, SelectionContext, Selector
from bgresample.selectors.dos import DOS
from bgresample.selectors.fixed import FixedSubset
from bgresample.selectors.full import Full
from bgresample.selectors.hopfield import HopfieldBoosting
from bgresample.selectors.hopfield_boosting import HopfieldBoostingSampler
from bgresample.selectors.ntom import NTOM
from bgresample.selectors.poem import POEM
from bgresample.selectors.random_subset import RandomSubset
from bgresample.selectors.registry import (
    CELL_SEP,
    NONE,
    SELECTORS,
    config_options,
    register_selector,
    selector_needs,
    variant_parts,
    weight_selectors,
)
from bgresample.selectors.resampled import Resampled
from bgresample.selectors.topk_weight import TopKWeight


def build_selector(
    name: str, ctx: SelectionContext, options: Mapping[str, Mapping[str, Any]] | None = None
) -> Selector | None:
    """The selector of variant ``name`` (a cell ``SELECTOR+LOSS`` builds ``SELECTOR``) over
    ``ctx`` (None for ``none``: no background); ``options[SELECTOR]``, if any, holds its keyword
    arguments (checked by the typed config)."""
    name = variant_parts(name)[0]
    if name == NONE:
        return None
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; valid: {', '.join([NONE, *SELECTORS])}")
    return SELECTORS[name](ctx, **dict((options or {}).get(name) or {}))


__all__ = [
    "CELL_SEP",
    "DOS",
    "NONE",
    "NTOM",
    "POEM",
    "SELECTORS",
    "FixedSubset",
    "Full",
    "HopfieldBoosting",
    "HopfieldBoostingSampler",
    "RandomSubset",
    "Refresh",
    "Resampled",
    "SelectionContext",
    "Selector",
    "TopKWeight",
    "build_selector",
    "config_options",
    "register_selector",
    "selector_needs",
    "variant_parts",
    "weight_selectors",
]
