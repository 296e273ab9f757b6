"""``wrn40_4_authors`` against a re-implementation of the authors' Wide ResNet written here from
the facts of their ``models/wide_resnet.py`` (JerryYLi/bg-resample-ood), ``bgresample convert
--authors`` of its state dicts, and ``bgresample.load_checkpoint`` of the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import bgresample
from bgresample.checkpoint import save_model
from bgresample.cli import main
from bgresample.data.embedded import OOD_SETS
from bgresample.losses import add_background_class
from bgresample.models import create_model

#: The authors' wrn40 at 10 classes; our own wrn40_4 for comparison.
AUTHORS_PARAMS, OURS_PARAMS = 8_955_050, 8_949_210
#: Classes of the embedded benchmark's ID data (digits 0-7).
EMBEDDED_CLASSES = 8


# -- the reference: the authors' layout, re-implemented for the test ---------------------------


class RefBlock(nn.Module):
    """Their block: pre-activation, biased convolutions, dropout right after the first
    convolution, the stride on the second one, shortcut on the raw input."""

    def __init__(self, cin: int, cout: int, stride: int, p: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=p)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=stride, padding=1, bias=True)
        layers = []
        if stride != 1 or cin != cout:
            layers = [nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=True)]
        self.shortcut = nn.Sequential(*layers)

    def forward(self, x):
        h = torch.relu(self.bn1(x))
        h = self.dropout(self.conv1(h))
        h = self.conv2(torch.relu(self.bn2(h)))
        return h + self.shortcut(x)


class RefWideResNet(nn.Module):
    def __init__(self, depth: int, k: int, p: float, num_classes: int, in_size: int = 32):
        super().__init__()
        n = (depth - 4) // 6
        stages = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, stages[0], kernel_size=3, padding=1, bias=True)
        cin = stages[0]
        for i, (width, stride) in enumerate(zip(stages[1:], (1, 2, 2), strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(RefBlock(cin, width, stride if j == 0 else 1, p))
                cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(stages[3], momentum=0.9)
        self.linear = nn.Linear(stages[3], num_classes)
        self.kernel = in_size // 4

    def forward(self, x):
        h = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        h = nn.functional.avg_pool2d(torch.relu(self.bn1(h)), self.kernel)
        return self.linear(h.view(h.size(0), -1))


def reference(num_classes: int = 10, seed: int = 0) -> RefWideResNet:
    """Their ``wrn40`` with random weights and, so that eval mode is not trivially the
    identity, random BatchNorm running statistics."""
    torch.manual_seed(seed)
    ref = RefWideResNet(40, 4, 0.3, num_classes)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(123)
    return ref.eval()


@pytest.fixture(scope="module")
def ref10() -> RefWideResNet:
    return reference(10)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def ref_logits(ref10, batch) -> torch.Tensor:
    with torch.no_grad():
        return ref10(batch)


def _max_diff(model: nn.Module, x: torch.Tensor, expected: torch.Tensor) -> float:
    with torch.no_grad():
        return (model.eval()(x) - expected).abs().max().item()


# -- the model -----------------------------------------------------------------------------------


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model("wrn40_4_authors", 10)) == AUTHORS_PARAMS
    assert count(reference(10)) == AUTHORS_PARAMS
    assert count(create_model("wrn40_4", 10)) == OURS_PARAMS


def test_state_dict_keys_and_shapes_are_the_authors(ref10):
    ours = create_model("wrn40_4_authors", 10).state_dict()
    theirs = ref10.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert not any(k.startswith("fc.") for k in ours)


def test_same_logits_as_the_reference(ref10, batch, ref_logits):
    model = create_model("wrn40_4_authors", 10)
    model.load_state_dict(ref10.state_dict())  # strict: the authors' keys, no renaming
    model.eval()
    with torch.no_grad():
        feats = model.features(batch)  # forward is fc(features(x)) (Classifier)
        assert feats.shape == (len(batch), model.feature_dim) and model.feature_dim == 256
        assert (model.fc(feats) - ref_logits).abs().max().item() < 1e-5


def test_fc_is_linear_and_replacing_it_keeps_one_head():
    model = create_model("wrn40_4_authors", 10)
    assert model.fc is model.linear
    add_background_class(model, 10)
    assert model.fc is model.linear and model.linear.out_features == 11
    assert [k for k in model.state_dict() if "linear" in k or "fc" in k] == [
        "linear.weight",
        "linear.bias",
    ]


def test_final_batchnorm_momentum_and_dropout():
    model = create_model("wrn40_4_authors", 10, dropout=0.5)
    assert model.bn1.momentum == 0.9
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.5}


# -- bgresample convert --authors, bgresample.load_checkpoint --------------------------------------


def _convert(src: Path, out: Path, *extra: str) -> int:
    return main(["convert", "--authors", str(src), "--out", str(out), *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("prefix", ["", "module."])
def test_convert_then_load_checkpoint_gives_the_same_logits(
    prefix, ref10, batch, ref_logits, tmp_path
):
    src, out = tmp_path / "cifar10_wrn40.pth", tmp_path / "wrn40.safetensors"
    torch.save({prefix + k: v for k, v in ref10.state_dict().items()}, src)
    assert _convert(src, out, "--num-classes", "10") == 0  # --model: wrn40_4_authors
    model, meta = bgresample.load_checkpoint(out)
    assert not model.training
    assert meta["model_name"] == "wrn40_4_authors" and meta["num_classes"] == 10
    norm = {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    assert meta["normalization"] == norm and model.normalization == norm
    assert meta["source"]["format"] == "authors" and len(meta["source"]["sha256"]) == 64
    assert _max_diff(model, batch, ref_logits) < 1e-5


def test_convert_fills_num_batches_tracked_of_old_checkpoints(ref10, tmp_path):
    src, out = tmp_path / "old.pth", tmp_path / "old.safetensors"
    state = {k: v for k, v in ref10.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, src)
    assert _convert(src, out, "--num-classes", "10") == 0
    model, _ = bgresample.load_checkpoint(out)
    assert int(model.bn1.num_batches_tracked) == 0
    torch.testing.assert_close(model.linear.weight, ref10.linear.weight, rtol=0, atol=0)


def test_convert_refuses_the_wrong_class_count_and_model(ref10, tmp_path, capsys):
    src = tmp_path / "w.pth"
    torch.save(ref10.state_dict(), src)
    assert _convert(src, tmp_path / "a.safetensors", "--num-classes", "100") == 2
    err = _error(capsys)
    assert "classifier of 10 classes, not 100" in err and "--num-classes 10" in err
    args = ["--num-classes", "10", "--model", "wrn40_4"]
    assert _convert(src, tmp_path / "b.safetensors", *args) == 2
    err = _error(capsys)
    assert "does not hold a wrn40_4 state dict" in err and "missing" in err
    assert "unexpected key(s) (conv1.weight" in err and "wrn40_4_authors" in err
    assert _convert(src, tmp_path / "c.safetensors", "--num-classes", "10", "--model", "wrn") == 2
    assert "--model 'wrn' is not a registered model" in _error(capsys)
    assert not list(tmp_path.glob("*.safetensors"))


class _RunsCode:
    """An object whose unpickling would run a function (here: create a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_convert_refuses_a_pickle_that_is_not_plain_tensors(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    src = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _RunsCode(marker)}, src)
    assert _convert(src, tmp_path / "o.safetensors", "--num-classes", "10") == 2
    assert "not a plain tensor checkpoint" in _error(capsys)
    assert not marker.exists()
    torch.save({"epoch": 3, "w": torch.zeros(1)}, src)
    assert _convert(src, tmp_path / "o.safetensors", "--num-classes", "10") == 2
    assert "does not hold a state dict of tensors" in _error(capsys)
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_needs_authors_and_refuses_to_overwrite(ref10, tmp_path, capsys):
    out = tmp_path / "o.safetensors"
    assert main(["convert", "--num-classes", "10", "--out", str(out)]) == 2
    assert "convert needs --authors IN.pth" in _error(capsys)
    assert _convert(tmp_path / "nope.pth", out, "--num-classes", "10") == 2
    assert "not found" in _error(capsys)
    src = tmp_path / "w.pth"
    torch.save(ref10.state_dict(), src)
    assert _convert(src, tmp_path / "o.pth", "--num-classes", "10") == 2
    assert "must end in .safetensors" in _error(capsys)
    out.write_bytes(b"keep me")
    assert _convert(src, out, "--num-classes", "10") == 2
    assert "--overwrite" in _error(capsys) and out.read_bytes() == b"keep me"
    assert _convert(src, out, "--num-classes", "10", "--overwrite") == 0
    assert bgresample.load_checkpoint(out)[1]["num_classes"] == 10


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        bgresample.load_checkpoint(tmp_path / "nope.safetensors")
    pth = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(1)}, pth)
    with pytest.raises(ValueError, match="bgresample convert --authors"):
        bgresample.load_checkpoint(pth)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(1)}, str(bare))
    with pytest.raises(ValueError, match="records no model"):
        bgresample.load_checkpoint(bare)
    own = tmp_path / "own.safetensors"
    model = create_model("small_cnn", 3)
    model.model_name = "mypkg.nets:factory"
    save_model(own, model)
    with pytest.raises(ValueError, match="does not import"):
        bgresample.load_checkpoint(own)


def test_load_checkpoint_of_a_registered_model(tmp_path):
    path = tmp_path / "small.safetensors"
    model = create_model("small_cnn", 3)
    model.normalization = {"size": 32, "mean": [0.4] * 3, "std": [0.2] * 3}
    save_model(path, model, {"stage": "pretrain"})
    loaded, meta = bgresample.load_checkpoint(path)
    assert meta["stage"] == "pretrain" and loaded.normalization == model.normalization
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_evaluate_a_converted_checkpoint_on_the_embedded_data(tiny, tmp_path, capsys):
    """The authors' preset, on the embedded benchmark (8 ID classes, so a converted 8-class
    model): every OOD set is scored by a WRN-40-4 on the CPU."""
    src, ckpt = tmp_path / "w.pth", tmp_path / "w.safetensors"
    torch.save(reference(EMBEDDED_CLASSES).state_dict(), src)
    assert _convert(src, ckpt, "--num-classes", str(EMBEDDED_CLASSES)) == 0
    small = ["data.embedded.test_fraction=0.02", "data.embedded.ood_size=20"]
    small += ["data.embedded.noise_ood_size=20"]
    args = ["evaluate", "--checkpoint", str(ckpt), "--preset", "cifar10", "--out"]
    args += [str(tmp_path / "ev"), "--set", "data.id=null", "--set", "evaluate.ood=all"]
    assert main([*args, *tiny, *(f"--set={s}" for s in small)]) == 0
    assert "ID accuracy" in capsys.readouterr().out
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(results["variants"]["model"]["ood"]) == set(OOD_SETS)
    assert results["checkpoint"] == str(ckpt)
