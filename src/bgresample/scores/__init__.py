"""OOD scores: pure functions of logits, higher = more in-distribution."""

from collections.abc import Callable

from torch import Tensor

from bgresample.errors import UserError
from bgresample.scores.msp import msp

SCORES: dict[str, Callable[[Tensor], Tensor]] = {"msp": msp}


def get_score(name: str) -> Callable[[Tensor], Tensor]:
    """Look up a score by name; raise UserError listing the valid names."""
    try:
        return SCORES[name]
    except KeyError:
        valid = ", ".join(sorted(SCORES))
        raise UserError(f"unknown score {name!r}; valid names: {valid}") from None


__all__ = ["SCORES", "get_score", "msp"]
