"""OOD scores, each a pure function in its own module; higher = more in-distribution (as MSP).

:data:`SCORES` is a plain dict from a score's name to a :class:`ScoreSpec` that says what the
score needs:

- ``"logits"``: ``fn(logits) -> scores`` (msp, maxlogit, energy);
- ``"model"``: ``fn(model, x) -> scores``, with input gradients, so a pass of its own (odin);
- ``"features"``: ``fn(features, state) -> scores`` on penultimate features, where
  ``state = fit(train_features, train_labels)`` is fitted once on the ID training set
  (mahalanobis, knn), or, for a score declared with ``fit_model=True``, ``state =
  fit(train_features, train_labels, model)`` is read from what the model stores (hopfield: the
  projection head and the ID and auxiliary patterns stored after fine-tuning);
  :meth:`ScoreSpec.fit_state` calls either.

:func:`register_score` adds one (a plain callable of logits counts as a logits score; so does one
put into ``SCORES`` directly, which :func:`get_score` wraps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from bgresample.scores.checks import check_logits
from bgresample.scores.energy import energy
from bgresample.scores.extra_class import extra_class
from bgresample.scores.hopfield import HopfieldState, fit_hopfield, hopfield
from bgresample.scores.knn import KNNState, fit_knn, knn
from bgresample.scores.mahalanobis import MahalanobisState, fit_mahalanobis, mahalanobis
from bgresample.scores.max_logit import max_logit
from bgresample.scores.msp import msp
from bgresample.scores.odin import odin, odin_perturb

Needs = Literal["logits", "model", "features"]


@dataclass(frozen=True)
class ScoreSpec:
    """A score function and what it needs (see the module docstring). Calling the spec calls
    ``fn``, so ``get_score("msp")(logits)`` works for logits scores."""

    fn: Callable[..., Tensor]
    needs: Needs = "logits"
    fit: Callable[..., Any] | None = None
    fit_model: bool = False

    def __post_init__(self) -> None:
        if self.needs not in ("logits", "model", "features"):
            raise ValueError(f"needs must be logits, model or features, got {self.needs!r}")
        if self.needs == "features" and self.fit is None:
            raise ValueError("a features score needs fit(train_features, train_labels) -> state")
        if self.fit_model and self.needs != "features":
            raise ValueError("fit_model=True is for a features score (its fit reads the model)")

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.fn(*args, **kwargs)

    def fit_state(self, features: Tensor, labels: Tensor, model: Any) -> Any:
        """The fitted state of a features score from the ID training ``features`` and
        ``labels``, and ``model`` (unwrapped) for a score with ``fit_model``."""
        if self.fit is None:
            raise ValueError("only a features score is fitted")
        return self.fit(features, labels, model) if self.fit_model else self.fit(features, labels)


SCORES: dict[str, ScoreSpec | Callable[[Tensor], Tensor]] = {}


def register_score(name: str, spec: ScoreSpec | Callable[[Tensor], Tensor]) -> ScoreSpec:
    """Add a score under ``name`` (a :class:`ScoreSpec`, or a plain function of logits);
    ValueError for a taken name. ``--scores NAME`` and ``selectors.score`` find it."""
    spec = spec if isinstance(spec, ScoreSpec) else ScoreSpec(spec)
    if name in SCORES and SCORES[name] != spec:
        raise ValueError(f"score {name!r} is registered already")
    SCORES[name] = spec
    return spec


register_score("msp", ScoreSpec(msp))
register_score("extra_class", ScoreSpec(extra_class))
register_score("maxlogit", ScoreSpec(max_logit))
register_score("energy", ScoreSpec(energy))
register_score("odin", ScoreSpec(odin, needs="model"))
register_score("mahalanobis", ScoreSpec(mahalanobis, needs="features", fit=fit_mahalanobis))
register_score("knn", ScoreSpec(knn, needs="features", fit=fit_knn))
register_score("hopfield", ScoreSpec(hopfield, needs="features", fit=fit_hopfield, fit_model=True))


def get_score(name: str) -> ScoreSpec:
    """Look up a score by name; raise ValueError listing the valid names."""
    try:
        entry = SCORES[name]
    except KeyError:
        valid = ", ".join(sorted(SCORES))
        raise ValueError(f"unknown score {name!r}; valid names: {valid}") from None
    return entry if isinstance(entry, ScoreSpec) else ScoreSpec(entry)


def parse_scores(names: str | Iterable[str]) -> list[str]:
    """Score names from ``"msp,energy"`` or a list: checked, duplicates dropped, order kept."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if name and name not in out:
            get_score(name)
            out.append(name)
    if not out:
        raise ValueError(f"no score given; valid names: {', '.join(sorted(SCORES))}")
    return out


__all__ = [
    "SCORES",
    "HopfieldState",
    "KNNState",
    "MahalanobisState",
    "ScoreSpec",
    "check_logits",
    "energy",
    "fit_hopfield",
    "fit_knn",
    "fit_mahalanobis",
    "get_score",
    "hopfield",
    "knn",
    "mahalanobis",
    "max_logit",
    "msp",
    "odin",
    "odin_perturb",
    "parse_scores",
    "register_score",
]
