"""``subset``: a static subset given by pool indices, e.g. a manifest that ``bgresample select``
wrote (``bgresample finetune --subset FILE.csv``)."""

from __future__ import annotations

from torch import Tensor

from bgresample.selectors.base import SelectionContext, Selector


class FixedSubset(Selector):
    """Train on the given pool indices; no selection cost."""

    name = "subset"
    refresh = "once"

    def __init__(self, ctx: SelectionContext, indices: Tensor) -> None:
        super().__init__(ctx)
        self.indices = indices

    def select_once(self) -> Tensor:
        return self.indices
