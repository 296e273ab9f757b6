"""Model zoo: a name -> factory registry of CIFAR-sized (3x32x32) classifiers.

Every model exposes ``features(x) -> (N, feature_dim)`` and ``forward(x) == fc(features(x))``.
"""

from torch import nn

from bgresample.errors import UserError

# Imported for their side effect: each module registers its factories.
from bgresample.models import densenet, resnet, small_cnn, wrn  # noqa: F401
from bgresample.models.base import REGISTRY, Classifier, register_model


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(REGISTRY)


def check_model(name: str, kwargs: dict[str, object]) -> None:
    """Refuse an unknown model name or keyword arguments its factory does not take, before any
    work starts."""
    from bgresample.config import bind_kwargs

    if name not in REGISTRY:
        raise UserError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())} "
            "(fix with --set model.name=...)"
        )
    bind_kwargs(REGISTRY[name], f"model.kwargs of {name}", 1, **kwargs)


def create_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``kwargs`` go to its factory.

    The returned model carries ``model_name`` and ``num_classes`` attributes.
    """
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    if num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes}")
    model = REGISTRY[name](num_classes, **kwargs)
    model.model_name = name
    model.num_classes = num_classes
    return model


__all__ = ["Classifier", "check_model", "create_model", "list_models", "register_model"]
