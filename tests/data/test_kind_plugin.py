"""A dataset kind declared in this file alone is a background pool for the commands and is sized
by `plan` (its own count, or its nominal size when the data is missing): a new kind is one
declaration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bgresample.cli import main
from bgresample.data import kinds
from bgresample.data.base import ImageArray


def _load(role: str, path: Path, options: kinds.LoadOptions) -> ImageArray:
    """``stripes``: an .npz whose ``images`` array is N x 32 x 32 x 3 uint8."""
    with np.load(path) as f:
        images = torch.from_numpy(f["images"]).permute(0, 3, 1, 2).contiguous()
    return ImageArray(images, name="stripes")


STRIPES = kinds.Kind(
    "stripes",
    ("background",),
    "an .npz with `images`, N x 32 x 32 x 3 uint8",
    "made by the test",
    "stripes.npz",
    _load,
    nominal={"background": 123_456},
    count=lambda role, path, options: len(np.load(path)["images"]),
)


@pytest.fixture
def stripes(tmp_path):
    kinds.register_kind(STRIPES)
    path = tmp_path / "stripes.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    yield path
    kinds.KINDS.pop("stripes")


def test_the_kind_is_a_pool_for_select(stripes, tmp_path, tiny, capsys):
    out = tmp_path / "sel"
    args = ["select", "--method", "random", "--pool", f"stripes:{stripes}", "--out", str(out)]
    assert main([*args, *tiny]) == 0
    summary = json.loads((out / "subset_summary.json").read_text())
    assert summary["pool_size"] == 285  # 300 items, 5% held out for validation
    capsys.readouterr()


def test_plan_counts_the_kind_or_takes_its_nominal_size(stripes, tmp_path, capsys):
    base = ["plan", "--json", "--steps", "1", "--quiet", "--seeds", "1", "--device", "cpu"]
    base += ["--set", "run.variants=[none]", "--data-root", str(tmp_path / "data")]
    assert main([*base, "--pool", f"stripes:{stripes}"]) == 0
    sizes = json.loads(capsys.readouterr().out)["sizes"]
    assert sizes["pool"] + sizes["holdout"] == 300 and sizes["sources"]["pool"] == "data"
    assert main([*base, "--pool", f"stripes:{tmp_path / 'missing.npz'}"]) == 0
    sizes = json.loads(capsys.readouterr().out)["sizes"]
    assert sizes["pool"] + sizes["holdout"] == 123_456 and sizes["sources"]["pool"] == "nominal"


def test_a_clashing_kind_is_refused(stripes):
    with pytest.raises(ValueError, match="registered already"):
        kinds.register_kind(kinds.Kind("stripes", ("background",), "", "", None, _load))
    with pytest.raises(ValueError, match="roles must be among"):
        kinds.register_kind(kinds.Kind("odd", ("train",), "", "", None, _load))
    with pytest.raises(ValueError, match="nominal sizes for roles it cannot play"):
        kinds.register_kind(
            kinds.Kind("odd", ("ood",), "", "", None, _load, nominal={"id": (1, 1, 1)})
        )
    assert "odd" not in kinds.KINDS
