"""Model zoo: a name -> factory registry of CIFAR-sized (3x32x32) classifiers, and models from
outside it (:mod:`bgresample.models.foreign`: ``package.module:factory``, ``torchvision:NAME``,
``timm:NAME``).

Every model exposes ``features(x) -> (N, feature_dim)`` and ``forward(x) == fc(features(x))``
(a foreign model that cannot be split so runs as it is; only feature scores and feature-based
selectors refuse it).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from torch import nn

from bgresample.errors import UserError

# Imported for their side effect: each module registers its factories.
from bgresample.models import densenet, resnet, small_cnn, wrn  # noqa: F401
from bgresample.models.base import REGISTRY, Classifier, register_model
from bgresample.models.foreign import ForeignClassifier, check_foreign, create_foreign, is_foreign

#: The side of the stored images, and the default ``data.size``.
DEFAULT_SIZE = 32


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(REGISTRY)


def _unknown(name: str) -> UserError:
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return UserError(
        f"unknown model {name!r}; {hint}valid names: {', '.join(list_models())}, or "
        "package.module:factory, torchvision:NAME, timm:NAME (fix with --set model.name=...)"
    )


def check_model(name: str, kwargs: dict[str, object]) -> None:
    """Refuse an unknown model name or keyword arguments its factory does not take, before any
    work starts."""
    if is_foreign(name):
        check_foreign(name, kwargs)
        return
    if name not in REGISTRY:
        raise _unknown(name)
    _bind_kwargs(REGISTRY[name], f"model.kwargs of {name}", 1, **kwargs)


def _bind_kwargs(fn: Any, where: str, *args: Any, **kwargs: Any) -> None:
    """Refuse keyword arguments that ``fn`` does not take, naming them and the valid ones."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][len(args) :]
        raise UserError(
            f"{where}: {e}; valid keys: {', '.join(params) or 'none'} (fix with --set)"
        ) from None


def create_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``kwargs`` go to its factory.

    A foreign model (``package.module:factory``, ``torchvision:NAME``, ``timm:NAME``) is checked
    on a 32x32 batch; :func:`build_model` checks it at another input size. The returned model
    carries ``model_name`` and ``num_classes`` attributes.
    """
    return build_model(name, num_classes, kwargs)


def build_model(
    name: str, num_classes: int, kwargs: dict[str, object], size: int = DEFAULT_SIZE
) -> nn.Module:
    """:func:`create_model` for images that reach the model at ``size`` x ``size``."""
    if num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes}")
    if is_foreign(name):
        model = create_foreign(name, num_classes, dict(kwargs), size)
    elif name not in REGISTRY:
        raise _unknown(name)
    else:
        model = REGISTRY[name](num_classes, **kwargs)
    model.model_name = name
    model.num_classes = num_classes
    return model


__all__ = [
    "Classifier",
    "ForeignClassifier",
    "build_model",
    "check_model",
    "create_model",
    "list_models",
    "register_model",
]
