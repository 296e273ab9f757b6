"""Bring your own model: ``model.name`` as ``package.module:factory``, ``torchvision:NAME`` or
``timm:NAME``, checked before any work starts and run end to end."""

from __future__ import annotations

import importlib
import json
import shutil
import sys

import pytest
import torch

from bgresample.checkpoint import read_meta
from bgresample.cli import main
from bgresample.config import load_config
from bgresample.errors import UserError
from bgresample.losses.extra_class import add_background_class
from bgresample.models import ForeignClassifier, build_model, create_model

MODULE = "bg_own_models"

OWN = """
import torch
from torch import nn

SEEN = set()  # input shapes (C, H, W) the model was called with


class Net(nn.Module):
    def __init__(self, num_classes, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        SEEN.add(tuple(x.shape[1:]))
        return self.head(self.body(x))


def net(num_classes, width=8):
    return Net(num_classes, width)


def wrong_width(num_classes):
    return Net(num_classes + 1)


def conv_head(num_classes):  # logits from a 1x1 convolution: no linear head to split at
    return nn.Sequential(nn.Conv2d(3, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def not_a_module(num_classes):
    return "a model"


def broken(num_classes):
    raise RuntimeError("out of coffee")


NOT_CALLABLE = 3
"""


@pytest.fixture
def own(tmp_path, monkeypatch):
    """The module ``bg_own_models`` (factories above), importable from ``tmp_path``."""
    (tmp_path / f"{MODULE}.py").write_text(OWN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield MODULE
    sys.modules.pop(MODULE, None)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_module_factory_is_split_into_features_and_fc(own):
    model = create_model(f"{own}:net", 5, width=6)
    assert isinstance(model, ForeignClassifier) and model.fc.out_features == 5
    assert model.model_name == f"{own}:net" and model.num_classes == 5
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    feats = model.features(x)
    assert feats.shape == (4, 6)
    torch.testing.assert_close(model.fc(feats), model(x))
    add_background_class(model, 5)  # the extra_class loss works on the split head
    assert model(x).shape == (4, 6)


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet18"])
def test_library_model_is_split_and_keeps_its_output(name):
    if name.startswith("timm"):
        pytest.importorskip("timm")
    torch.manual_seed(0)
    model = create_model(name, 3)
    assert isinstance(model, ForeignClassifier) and model.fc.in_features == 512
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model.fc(model.features(x)), model(x))


def test_model_without_a_linear_head_refuses_features_only(own):
    model = create_model(f"{own}:conv_head", 4)
    assert isinstance(model, ForeignClassifier) and model.fc is None
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 4)
    with pytest.raises(UserError) as e:
        model.features(x)
    msg = str(e.value)
    assert "\n" not in msg and f"{own}:conv_head" in msg
    assert "mahalanobis" in msg and "knn" in msg and "ntom" in msg and "hopfield" in msg
    with pytest.raises(ValueError, match="must have a final linear head fc"):
        add_background_class(model, 4)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("no_such_module_xyz:net", "cannot import module 'no_such_module_xyz' (not found)"),
        ("{own}:nett", "has no attribute 'nett'; did you mean net"),
        ("{own}:NOT_CALLABLE", "is not callable (a int)"),
        (":net", "is not a valid model"),
        ("torchvision:resnet19", "unknown torchvision classification model 'resnet19'"),
        ("resnet19", "unknown model 'resnet19'; did you mean resnet18"),
    ],
)
def test_bad_specs_are_refused_when_the_config_is_loaded(own, spec, fragment):
    with pytest.raises(UserError) as e:
        load_config(sets=[f"model.name={spec.format(own=own)}"])
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_unknown_torchvision_model_lists_close_matches():
    with pytest.raises(UserError, match=r"did you mean .*resnet18"):
        load_config(sets=["model.name=torchvision:resnet19"])


def test_factory_kwargs_are_checked(own):
    with pytest.raises(UserError, match="cannot be called as net"):
        load_config(sets=[f"model.name={own}:net", "model.kwargs={depth: 3}"])
    with pytest.raises(UserError, match="sets num_classes"):
        load_config(sets=[f"model.name={own}:net", "model.kwargs={num_classes: 3}"])


def test_unknown_timm_model_lists_close_matches():
    pytest.importorskip("timm")
    with pytest.raises(UserError, match=r"did you mean .*resnet18"):
        load_config(sets=["model.name=timm:resnet19"])


def test_timm_without_timm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(UserError, match="pip install timm"):
        load_config(sets=["model.name=timm:resnet18"])


@pytest.mark.parametrize(
    "factory, fragment",
    [
        ("wrong_width", "is (2, 5), expected (2, 4): one logit per class"),
        ("not_a_module", "returned a str, not a torch nn.Module"),
        ("broken", "failed (RuntimeError: out of coffee)"),
    ],
)
def test_bad_models_are_refused_when_built(own, factory, fragment):
    with pytest.raises(UserError) as e:
        create_model(f"{own}:{factory}", 4)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_forward_failure_names_the_input_size():
    with pytest.raises(UserError) as e:
        build_model("torchvision:vit_b_16", 4, {}, size=32)
    msg = str(e.value)
    assert "(2, 3, 32, 32)" in msg and "data.size" in msg and "\n" not in msg


def test_wrong_output_width_is_one_line_on_the_cli(own, tiny, tmp_path, capsys):
    args = ["pretrain", "--out", str(tmp_path / "p"), *tiny]
    assert main([*args, "--set", f"model.name={own}:wrong_width"]) == 2
    assert "expected (2, 8)" in _one_line_error(capsys)


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet10t"])
def test_run_with_a_library_model(name, tiny, tmp_path):
    if name.startswith("timm"):
        pytest.importorskip("timm")
    out = tmp_path / "run"
    sets = [f"model.name={name}", "run.variants=none,random", "run.seeds=1"]
    args = ["run", "--quick", "--out", str(out), *tiny]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == ["none", "random"]
    meta = read_meta(out / "pretrain" / "pretrain.safetensors")
    assert meta["model_name"] == name
    assert meta["normalization"] == {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}


def test_run_with_an_own_model_at_another_size_and_normalisation(own, tiny, tmp_path, capsys):
    """A ``module:factory`` model runs end to end; ``data.size=40`` gives it 40x40 inputs; the
    normalisation is recorded in its checkpoints, and a run with another one refuses them."""
    out = tmp_path / "run"
    sets = [
        f"model.name={own}:net",
        "model.kwargs={width: 6}",
        "data.size=40",
        "data.mean=[0.1,0.2,0.3]",
        "run.variants=none,random",
        "run.seeds=1",
    ]
    args = ["run", "--quick", "--out", str(out), *tiny]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert importlib.import_module(own).SEEN == {(3, 40, 40)}
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == ["none", "random"]
    ckpt = out / "pretrain" / "pretrain.safetensors"
    meta = read_meta(ckpt)
    assert meta["model_name"] == f"{own}:net"
    assert meta["normalization"] == {"size": 40, "mean": [0.1, 0.2, 0.3], "std": [0.25] * 3}
    capsys.readouterr()

    alone = tmp_path / "pretrain.safetensors"  # outside its run folder: no config comes with it
    shutil.copy(ckpt, alone)
    ev = ["evaluate", "--checkpoint", str(alone), "--out", str(tmp_path / "ev"), *tiny]
    ev += ["--set", f"model.name={own}:net", "--set", "model.kwargs={width: 6}"]
    assert main([*ev, "--set", "data.size=40"]) == 2
    err = _one_line_error(capsys)
    assert "data.mean=[0.1,0.2,0.3]" in err and "data.mean=[0.5,0.5,0.5]" in err
    assert "--set data.mean=[0.1,0.2,0.3]" in err
    ev[ev.index(str(tmp_path / "ev"))] = str(tmp_path / "ev2")
    assert main([*ev, "--set", "data.mean=[0.1,0.2,0.3]"]) == 2
    assert "--set data.size=40" in _one_line_error(capsys)
