"""Models from outside the registry ("bring your own model"): ``model.name`` may be

- ``package.module:factory``: ``factory(num_classes=K, **model.kwargs)`` returns an ``nn.Module``;
- ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None, num_classes=K, ...)``;
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, num_classes=K, ...)`` (needs timm).

Each is checked with one dummy forward of a ``(2, 3, S, S)`` batch in eval mode (S =
``data.size``): it must give K logits. The engine's feature scores (mahalanobis, knn, hopfield),
``finetune.loss=hopfield`` and selectors (ntom, poem, dos, hopfield, hopfield-boosting) use
``model.features(x)``, ``model.fc(features)`` and
``model.feature_dim``; a model without ``features`` and a linear ``fc`` is split at its last
``nn.Linear`` (:class:`ForeignClassifier`): the module with that layer replaced by
``nn.Identity`` gives the features, the layer is ``fc``. The split is kept only if
``fc(features(x))`` reproduces the model's output on the dummy batch; otherwise the model runs as
it is and only the paths that need features refuse it, with a :class:`UserError`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from bgresample.errors import UserError
from bgresample.optional import torchvision

#: What needs penultimate features, for the error of a model that cannot give them.
FEATURE_USERS = (
    "the feature scores mahalanobis, knn, hopfield, finetune.loss=hopfield and the selectors "
    "ntom, poem, dos, hopfield, hopfield-boosting"
)
#: Prefixes of the ``model.name`` forms that are not ``package.module:factory``.
LIBRARIES = ("torchvision", "timm")


def is_foreign(name: str) -> bool:
    """Whether ``name`` names a model outside the registry (it has a ``:``)."""
    return ":" in name


def _fix(name: str) -> str:
    return f"model.name={name}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _close(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=5, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else ""


# -- resolving a name to a factory ----------------------------------------------------------------


def _torchvision_models(name: str) -> Any:
    return torchvision(f"model.name={name}", "models")


def _torchvision_names(name: str) -> list[str]:
    models = _torchvision_models(name)
    return models.list_models(module=models)


def _timm():
    try:
        import timm
    except ImportError:
        return None
    return timm


def _user_factory(name: str) -> Callable[..., Any]:
    """The callable that ``package.module:factory`` names (``factory`` may be dotted)."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UserError(
            f"{_fix(name)} is not a valid model; expected a registered name, "
            "package.module:factory, torchvision:NAME or timm:NAME (fix with --set model.name=...)"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module may fail in any way while it is imported
        if isinstance(e, ModuleNotFoundError) and e.name == module_name.split(".")[0]:
            why = "not found"
        else:
            why = _first_line(e)
        raise UserError(
            f"{_fix(name)}: cannot import module {module_name!r} ({why}); install it or put its "
            "folder on PYTHONPATH (fix with --set model.name=package.module:factory)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(module) if not n.startswith("_")]
            hint = _close(attr, public)
            raise UserError(
                f"{_fix(name)}: module {module_name!r} has no attribute {attr!r}"
                + (f"; {hint}" if hint else "")
                + " (fix with --set model.name=...)"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(
            f"{_fix(name)}: {attr!r} in module {module_name!r} is not callable (a "
            f"{type(obj).__name__}); name a function or class that takes num_classes= and "
            "returns an nn.Module"
        )
    return obj


def check_foreign(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a foreign model name that cannot be built (unknown library model, module that
    cannot be imported, missing or non-callable factory, keyword arguments it cannot take)."""
    if "num_classes" in kwargs:
        raise UserError(
            f"model.kwargs of {name} sets num_classes, which comes from the ID data; remove it"
        )
    prefix, _, target = name.partition(":")
    if prefix == "torchvision":
        names = _torchvision_names(name)
        if target not in names:
            hint = _close(target, names) or "see torchvision.models.list_models()"
            raise UserError(
                f"unknown torchvision classification model {target!r}; {hint} "
                "(fix with --set model.name=torchvision:NAME)"
            )
    elif prefix == "timm":
        timm = _timm()
        if timm is None:
            raise UserError(
                f"{_fix(name)} needs the timm package, which is not installed: pip install timm"
            )
        if not timm.is_model(target):
            hint = _close(target, timm.list_models()) or "see timm.list_models()"
            raise UserError(
                f"unknown timm model {target!r}; {hint} (fix with --set model.name=timm:NAME)"
            )
    else:
        factory = _user_factory(name)
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return  # a builtin without a signature: calling it will tell
        try:
            sig.bind(num_classes=1, **kwargs)
        except TypeError as e:
            raise UserError(
                f"{_fix(name)}: the factory cannot be called as {target}(num_classes=K"
                f"{''.join(f', {k}=...' for k in kwargs)}) ({e}); it must take num_classes= "
                "(and model.kwargs)"
            ) from None


def _build_raw(name: str, num_classes: int, kwargs: dict[str, Any]) -> Any:
    prefix, _, target = name.partition(":")
    try:
        if prefix == "torchvision":
            return _torchvision_models(name).get_model(
                target, weights=None, num_classes=num_classes, **kwargs
            )
        if prefix == "timm":
            timm = _timm()
            assert timm is not None  # check_foreign refused it
            return timm.create_model(target, pretrained=False, num_classes=num_classes, **kwargs)
        return _user_factory(name)(num_classes=num_classes, **kwargs)
    except UserError:
        raise
    except Exception as e:  # the factory is foreign code
        raise UserError(
            f"{_fix(name)}: building the model with num_classes={num_classes} and model.kwargs "
            f"{kwargs} failed ({_first_line(e)}); fix model.kwargs (--set model.kwargs=...)"
        ) from None


# -- the wrapper --------------------------------------------------------------------------------


class ForeignClassifier(nn.Module):
    """A foreign classifier ``net``, split into features and a linear head when possible.

    With ``fc`` (the model's last ``nn.Linear``, replaced in ``net`` by ``nn.Identity``):
    ``features(x) = net(x)`` and ``forward(x) = fc(features(x))``, the interface of
    :class:`bgresample.models.Classifier`. Without it (``fc is None``), ``forward`` is the model
    itself and :meth:`features` raises a :class:`UserError`.
    """

    def __init__(self, net: nn.Module, fc: nn.Linear | None) -> None:
        super().__init__()
        self.net = net
        self.fc = fc

    def _no_features(self) -> UserError:
        return UserError(
            f"model {getattr(self, 'model_name', type(self.net).__name__)} has no "
            f"penultimate features (no final nn.Linear head to split at), which "
            f"{FEATURE_USERS} need; use msp/energy/odin and none/full/random/resampled, or a "
            "model with features(x) and fc"
        )

    @property
    def feature_dim(self) -> int:
        if self.fc is None:
            raise self._no_features()
        return self.fc.in_features

    def features(self, x: Tensor) -> Tensor:
        if self.fc is None:
            raise self._no_features()
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out if self.fc is None else self.fc(out)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, last = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, last, module)


def _same(a: Any, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a, b, 1e-4, 1e-5)


def _split(net: nn.Module, x: Tensor, ref: Tensor) -> ForeignClassifier:
    """``net`` split at its last ``nn.Linear`` when that reproduces ``ref = net(x)``."""
    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear) and n]
    if linears:
        path, fc = linears[-1]
        _set_submodule(net, path, nn.Identity())
        try:
            feats = net(x)
            if (
                isinstance(feats, Tensor)
                and feats.shape == (len(x), fc.in_features)
                and _same(fc(feats), ref)
            ):
                return ForeignClassifier(net, fc)
        except Exception:  # the Linear's input was not what the rest of the model feeds it
            pass
        _set_submodule(net, path, fc)
    return ForeignClassifier(net, None)


def _native(net: nn.Module, x: Tensor, ref: Tensor) -> bool:
    """Whether ``net`` already has ``features`` and an ``fc`` head with ``fc(features(x)) ==
    net(x)``."""
    fc = getattr(net, "fc", None)
    if not (callable(getattr(net, "features", None)) and isinstance(fc, nn.Linear)):
        return False
    try:
        return _same(fc(net.features(x)), ref)
    except Exception:
        return False


def create_foreign(name: str, num_classes: int, kwargs: dict[str, Any], size: int) -> nn.Module:
    """Build the foreign model ``name`` with ``num_classes`` outputs, checked on a dummy
    ``(2, 3, size, size)`` batch; split into ``features`` / ``fc`` when it has no such pair."""
    check_foreign(name, kwargs)
    net = _build_raw(name, num_classes, kwargs)
    if not isinstance(net, nn.Module):
        raise UserError(
            f"{_fix(name)}: the factory returned a {type(net).__name__}, not a torch nn.Module"
        )
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            try:
                ref = net(x)
            except Exception as e:
                raise UserError(
                    f"{_fix(name)}: a forward pass of a (2, 3, {size}, {size}) batch failed "
                    f"({_first_line(e)}); the images reach the model at data.size={size} "
                    "(fix with --set data.size=... or model.kwargs)"
                ) from None
            if not isinstance(ref, Tensor) or ref.shape != (2, num_classes):
                got = tuple(ref.shape) if isinstance(ref, Tensor) else type(ref).__name__
                raise UserError(
                    f"{_fix(name)}: the model's output for a (2, 3, {size}, {size}) batch is "
                    f"{got}, expected (2, {num_classes}): one logit per class of the ID data"
                )
            if _native(net, x, ref):
                model = net
                if not isinstance(getattr(net, "feature_dim", None), int):
                    net.feature_dim = net.fc.in_features
            else:
                model = _split(net, x, ref)
    finally:
        net.train(was_training)
    model.train(was_training)
    return model
