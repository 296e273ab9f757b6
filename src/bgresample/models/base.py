"""Shared pieces of the model zoo: the registry, the classifier interface, weight init."""

from collections.abc import Callable

from torch import Tensor, nn


class Classifier(nn.Module):
    """A backbone that maps images to a feature vector, followed by a linear head ``fc``.

    Subclasses set ``feature_dim`` and ``fc`` and implement :meth:`features`.
    """

    feature_dim: int
    fc: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, feature_dim)``: after global pooling, before ``fc``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.fc(self.features(x))


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions, BatchNorm weight 1 / bias 0, zero linear biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


ModelFactory = Callable[..., Classifier]

REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a factory ``fn(num_classes, **kwargs) -> Classifier`` as ``name``."""

    def decorator(fn: ModelFactory) -> ModelFactory:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        REGISTRY[name] = fn
        return fn

    return decorator
