"""``full``: the whole pool, the paper's Full reference (gamma = 100%; Li & Vasconcelos,
"Background Data Resampling for Outlier-Aware Classification", CVPR 2020, Table 2). It is the
only selector that ignores the gamma budget."""

from __future__ import annotations

import torch
from torch import Tensor

from bgresample.selectors.base import Selector
from bgresample.selectors.registry import register_selector


@register_selector
class Full(Selector):
    """Every pool item, once; no selection cost."""

    name = "full"
    refresh = "once"
    summary_line = "the whole pool (the paper's Full)"

    def select_once(self) -> Tensor:
        return torch.arange(len(self.ctx.pool))
