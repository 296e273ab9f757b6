"""A classifier and an OOD score as one detector object (pytorch-ood's ``Detector`` interface).

::

    detector = Detector(model, score="energy").fit(train_loader)  # fit: features scores only
    metrics = OODMetrics()
    for x, is_ood in test_loader:
        metrics.update(detector.score(x), is_ood)   # ID-ness: higher = more in-distribution

``predict(x)`` is ``-score(x)``, an outlier score (higher = more OOD) as pytorch-ood's
``Detector.predict`` gives, for ``OODMetrics.pytorch_ood()`` or ``OODMetrics(scores="outlier")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from bgresample.scores import get_score


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Detector:
    """``model`` with one of :data:`bgresample.scores.SCORES` (``score``, by name).

    Logits scores (msp, maxlogit, energy, extra_class) and odin need nothing more. Features
    scores (mahalanobis, knn, hopfield) need penultimate features, ``features(x) -> (N, D)``
    (default: ``model.features``, as bgresample's models have), and :meth:`fit` on the ID
    training data (hopfield reads the patterns the model stores, ``model.hopfield``).
    ``params`` go to the score function (e.g. ``T=1000.0, eps=0.0014`` for odin, ``k=50`` for
    knn). The model runs in eval mode, its mode restored afterwards; inputs are moved to the
    device of its parameters.
    """

    def __init__(
        self,
        model: nn.Module,
        score: str = "msp",
        *,
        features: Callable[[Tensor], Tensor] | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(score, str):
            raise TypeError(f"score must be a score's name (e.g. 'msp'), got {score!r}")
        self.spec = get_score(score)
        self.model, self.name, self.params = model, score, params
        leading = {"logits": 1, "model": 2, "features": 2}[self.spec.needs]
        try:
            inspect.signature(self.spec.fn).bind_partial(*([None] * leading), **params)
        except TypeError:
            raise TypeError(
                f"score {score!r} takes no parameter(s) {sorted(params)}; its signature is "
                f"{inspect.signature(self.spec.fn)}"
            ) from None
        if self.spec.needs == "features":
            features = features or getattr(model, "features", None)
            if not callable(features):
                raise ValueError(
                    f"score {score!r} needs penultimate features: pass features=callable(x) -> "
                    f"(N, D), or a model with a features(x) method"
                )
        self.features = features
        self.state: Any = None

    def _device(self) -> torch.device | None:
        param = next(self.model.parameters(), None)
        return None if param is None else param.device

    def _input(self, x: Tensor) -> Tensor:
        device = self._device()
        return x if device is None else x.to(device)

    def fit(self, loader: Iterable) -> Detector:
        """Fit a features score (its class means or neighbour bank) on ``(x, y, ...)`` batches of
        the ID training data; other scores need no fit and return at once. Returns self."""
        if self.spec.needs != "features":
            return self
        feats, labels = [], []
        with torch.no_grad(), _eval_mode(self.model):
            for batch in loader:
                if not isinstance(batch, tuple | list) or len(batch) < 2:
                    raise ValueError(
                        f"fit takes a loader of (x, y) batches (the ID training data), got a "
                        f"batch of type {type(batch).__name__}"
                    )
                feats.append(self.features(self._input(batch[0])).float())
                labels.append(torch.as_tensor(batch[1]).to(feats[-1].device))
        if not feats:
            raise ValueError("fit got an empty loader; pass the ID training data")
        self.state = self.spec.fit_state(torch.cat(feats), torch.cat(labels), self.model)
        return self

    def score(self, x: Tensor) -> Tensor:
        """ID-ness scores of the inputs ``x`` (higher = more in-distribution), for
        ``OODMetrics()``."""
        x = self._input(x)
        if self.spec.needs == "model":
            return self.spec.fn(self.model, x, **self.params)
        if self.spec.needs == "features" and self.state is None:
            raise ValueError(f"score {self.name!r} must be fitted first: call fit(train_loader)")
        with torch.no_grad(), _eval_mode(self.model):
            if self.spec.needs == "features":
                return self.spec.fn(self.features(x), self.state, **self.params)
            return self.spec.fn(self.model(x), **self.params)

    def predict(self, x: Tensor) -> Tensor:
        """Outlier scores, ``-score(x)`` (higher = more OOD), as pytorch-ood's detectors give."""
        return -self.score(x)
