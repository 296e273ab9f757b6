"""Configs: defaults, presets, --set overrides, recipes, and the round trip through a run folder."""

from __future__ import annotations

import pytest
import yaml

from bgresample.cli import main
from bgresample.config import default_config, load_config, parse_set, presets
from bgresample.errors import UserError


def test_set_parses_yaml_values_and_nests():
    assert parse_set("resample.eps=0.25") == {"resample": {"eps": 0.25}}
    assert parse_set("evaluate.ood=[glyphs, gaussian]") == {
        "evaluate": {"ood": ["glyphs", "gaussian"]}
    }
    with pytest.raises(UserError, match="key=value"):
        parse_set("resample.eps")


def test_precedence_preset_file_recipe_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("finetune:\n  lr: 0.5\n  epochs: 7\n")
    cfg = load_config(f, ["finetune.epochs=3"], preset="cifar10")
    assert cfg["model"]["name"] == "wrn40_4"  # preset
    assert cfg["finetune"]["lr"] == 0.1  # the preset's recipe (authors) over the file
    assert cfg["finetune"]["epochs"] == 3  # --set over everything
    assert "cifar10" in presets() and "tiny-imagenet" in presets()


def test_resolved_config_round_trips_through_a_run_folder(tmp_path, tiny):
    out = tmp_path / "a"
    args = ["pretrain", *tiny, "--set", "resample.eps=0.3", "--seed", "7"]
    assert main([*args, "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 7 and saved["resample"]["eps"] == 0.3
    assert load_config(out / "config.yaml") == saved
    again = tmp_path / "b"
    assert (
        main(["pretrain", "--config", str(out / "config.yaml"), "--out", str(again), "--quiet"])
        == 0
    )
    assert yaml.safe_load((again / "config.yaml").read_text()) == saved
    assert (again / "pretrain.safetensors").read_bytes() == (
        out / "pretrain.safetensors"
    ).read_bytes()


def test_defaults_are_valid_and_complete():
    cfg = default_config()
    for section in (
        "data",
        "model",
        "accel",
        "pretrain",
        "resample",
        "select",
        "finetune",
        "evaluate",
        "run",
    ):
        assert section in cfg
