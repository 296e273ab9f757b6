"""``data.size``, ``data.mean`` and ``data.std``: what the model sees, their checks, and their
record in model checkpoints."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
import yaml

from bgresample.checkpoint import load_model_state, read_meta, save_model
from bgresample.config import load_config, presets
from bgresample.data.transforms import CropFlip, prepare
from bgresample.engine.experiment import build_model
from bgresample.errors import UserError
from bgresample.models import create_model
from bgresample.runtime.accel import Accel

MEAN = [0.1, 0.2, 0.3]


def _accel(*sets: str) -> Accel:
    cfg = load_config(sets=[*sets, "device=cpu", "accel.channels_last=false"])
    return Accel.from_config(cfg.device, cfg.accel, cfg.data.workers, cfg.data)


def _raw(n: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator())


def test_defaults_are_the_papers_and_bit_identical_to_the_fixed_formula():
    cfg = load_config()
    assert (cfg.data.size, cfg.data.mean, cfg.data.std) == (32, [0.5] * 3, [0.25] * 3)
    raw = _raw()
    expected = (raw.float() / 255.0 - 0.5) / 0.25
    assert torch.equal(prepare(raw), expected)
    assert torch.equal(_accel().ready(raw), expected)


def test_mean_changes_what_the_model_sees():
    raw = _raw()
    x = _accel("data.mean=[0.1,0.2,0.3]").ready(raw)
    default = _accel().ready(raw)
    assert not torch.equal(x, default)
    for c, m in enumerate(MEAN):
        torch.testing.assert_close(x[:, c], (raw[:, c].float() / 255.0 - m) / 0.25)


def test_std_per_channel():
    raw = _raw()
    x = prepare(raw, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    for c, (m, s) in enumerate(zip([0.5, 0.4, 0.3], [0.2, 0.25, 0.3], strict=True)):
        torch.testing.assert_close(x[:, c], (raw[:, c].float() / 255.0 - m) / s)


def test_size_resizes_after_augmentation():
    raw = _raw()
    accel = _accel("data.size=40")
    aug = CropFlip.draw(len(raw), torch.Generator().manual_seed(0))
    x = accel.ready(raw, aug)
    assert x.shape == (4, 3, 40, 40) and x.dtype == torch.float32
    cropped = prepare(raw, aug=aug)  # 32x32, then bilinear to 40x40
    expected = torch.nn.functional.interpolate(
        cropped, size=(40, 40), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(x, expected)
    # sets stored in normalised space (Gaussian / Uniform OOD) are resized, not normalised again
    noise = torch.rand(4, 3, 32, 32) * 2 - 1
    y = accel.ready(noise, normalized=True)
    assert y.shape == (4, 3, 40, 40)
    assert torch.equal(_accel().ready(noise, normalized=True), noise)


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("data.mean=[0.1,0.2]", "data.mean=[0.1, 0.2] is invalid: expected a list of 3 numbers"),
        ("data.std=[0.25,0,0.25]", "data.std=[0.25, 0, 0.25] is invalid: expected a list of 3"),
        ("data.std=0.25", "data.std=0.25 is invalid"),
        ("data.size=0", "data.size=0 is invalid: expected a positive integer"),
    ],
)
def test_bad_values_are_refused(item, fragment):
    with pytest.raises(UserError) as e:
        load_config(sets=[item])
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tiny-imagenet"])
def test_presets_set_the_papers_normalisation_explicitly(name):
    assert name in presets()
    text = resources.files("bgresample").joinpath(f"configs/presets/{name}.yaml").read_text()
    data = yaml.safe_load(text)["data"]
    assert (data["size"], data["mean"], data["std"]) == (32, [0.5] * 3, [0.25] * 3)


def test_checkpoint_records_normalisation_and_refuses_another(tmp_path):
    path = tmp_path / "m.safetensors"
    trained = build_model(load_config(sets=["data.mean=[0.1,0.2,0.3]"]), 4)
    save_model(path, trained)
    assert read_meta(path)["normalization"] == {"size": 32, "mean": MEAN, "std": [0.25] * 3}
    with pytest.raises(UserError) as e:
        load_model_state(path, build_model(load_config(), 4))
    msg = str(e.value)
    assert "\n" not in msg
    assert "trained with data.mean=[0.1,0.2,0.3]" in msg and "uses data.mean=[0.5,0.5,0.5]" in msg
    assert "--set data.mean=[0.1,0.2,0.3]" in msg
    load_model_state(path, build_model(load_config(sets=["data.mean=[0.1,0.2,0.3]"]), 4))


def test_checkpoint_without_record_loads_as_before(tmp_path):
    path = tmp_path / "old.safetensors"
    save_model(path, create_model("small_cnn", 4))  # no normalization attribute: no record
    assert "normalization" not in read_meta(path)
    load_model_state(path, build_model(load_config(sets=["data.mean=[0.1,0.2,0.3]"]), 4))
