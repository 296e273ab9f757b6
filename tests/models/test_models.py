"""Tests for the model zoo: registry, shapes, the features/forward contract, parameter counts."""

import pytest
import torch

from bgresample.errors import UserError
from bgresample.models import create_model, list_models

ALL_MODELS = ["densenet100", "resnet18", "small_cnn", "wrn40_2", "wrn40_4"]

PARAM_RANGES = {
    "small_cnn": (0, 100_000),
    "wrn40_2": (2_100_000, 2_300_000),
    "wrn40_4": (8_800_000, 9_000_000),
    "resnet18": (11_000_000, 11_300_000),
    "densenet100": (700_000, 850_000),
}


def test_list_models_sorted_and_complete() -> None:
    names = list_models()
    assert names == sorted(names)
    assert set(ALL_MODELS) <= set(names)


def test_unknown_model_raises_user_error_listing_names() -> None:
    with pytest.raises(UserError) as exc:
        create_model("nope", 10)
    message = str(exc.value)
    assert "\n" not in message
    assert "'nope'" in message
    for name in ALL_MODELS:
        assert name in message


def test_bad_num_classes_raises_user_error() -> None:
    with pytest.raises(UserError, match="num_classes"):
        create_model("small_cnn", 0)


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward_and_features(name: str, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes)
    assert model.model_name == name
    assert model.num_classes == num_classes
    assert isinstance(model.feature_dim, int)

    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits = model(x)
    assert logits.shape == (2, num_classes)
    logits.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, model.feature_dim)
        torch.testing.assert_close(model(x), model.fc(feats))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_parameter_count(name: str) -> None:
    n_params = sum(p.numel() for p in create_model(name, 10).parameters())
    low, high = PARAM_RANGES[name]
    assert low <= n_params <= high, f"{name}: {n_params} parameters"


@pytest.mark.parametrize("name", ["small_cnn", "wrn40_2"])
def test_dropout_kwarg(name: str) -> None:
    model = create_model(name, 10, dropout=0.5)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and all(p == 0.5 for p in rates)


def test_wrn_default_dropout() -> None:
    model = create_model("wrn40_2", 10)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.3}
