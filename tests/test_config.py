"""Configs: defaults, presets, --set overrides, recipes, and the round trip through a run folder."""

from __future__ import annotations

import pytest
import yaml

from bgresample.cli import main
from bgresample.config import (
    Config,
    default_config,
    default_dict,
    load_config,
    parse_set,
    presets,
)
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
    assert cfg.model.name == "wrn40_4_authors"  # preset
    assert cfg.finetune.lr == 0.5  # the file over the preset's recipe (authors)
    assert cfg.finetune.epochs == 3  # --set over everything
    assert cfg.finetune.background_order == "shuffle"  # the recipe's, where the file is silent
    plain = load_config(None, None, preset="cifar10")
    assert plain.finetune.lr == 0.1 and plain.finetune.epochs == 50  # the recipe over the preset
    # a recipe the file names is expanded below the file's own values too
    f.write_text("finetune:\n  recipe: oe\n  lr: 0.02\n")
    oe = load_config(f)
    assert oe.finetune.lr == 0.02 and oe.finetune.epochs == 10
    assert "cifar10" in presets() and "tiny-imagenet" in presets()


def test_resolved_config_round_trips_through_a_run_folder(tmp_path, tiny):
    out = tmp_path / "a"
    args = ["pretrain", *tiny, "--set", "resample.eps=0.3", "--seed", "7"]
    assert main([*args, "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 7 and saved["resample"]["eps"] == 0.3
    assert load_config(out / "config.yaml").to_dict() == saved
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
    assert isinstance(cfg, Config)
    assert cfg.to_dict() == default_dict()  # every default key is in the schema, and back


def test_values_are_typed():
    cfg = load_config(
        sets=["finetune.lr=1e-3", "resample.refresh_every=5", "run.variants=none,full"]
    )
    assert cfg.finetune.lr == 0.001 and isinstance(cfg.finetune.lr, float)  # YAML: "1e-3" is text
    assert cfg.resample.refresh_every == 5
    assert cfg.run.variants == ["none", "full"]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("resample.eps=abc", "resample.eps='abc' is invalid: expected a number in [0, 1]"),
        ("resample.eps=null", "resample.eps=null is invalid"),
        ("resample.eps=1.5", "expected a number in [0, 1]"),
        ("resample=5", "resample must be a mapping with the keys epochs, draws_per_item"),
        ("resample.batch_size=abc", "expected a positive integer"),
        ("resample.batch_size=1.5", "resample.batch_size=1.5 is invalid"),
        ("finetune.batch_size=0", "expected a positive integer"),
        ("seed=abc", "seed='abc' is invalid"),
        ("pretrain.momentum=-0.1", "expected a non-negative number"),
        ("finetune.weight_decay=-1", "expected a non-negative number"),
        ("finetune.epochs=-1", "expected a non-negative integer"),
        ("data.embedded.pool_size=0", "expected a positive integer"),
        ("select.gamma=0", "expected a number in (0, 1]"),
        ("run.seeds=0", "expected a positive integer"),
        ("pretrain.lr=-0.1", "expected a positive number"),
        ("finetune.loss=hinge", "one of uniform, max_entropy, energy, extra_class"),
        ("accel.amp=maybe", "true or false or one of auto"),
        ("finetune.freeze_bn=1", "expected true or false"),
        ("model.kwargs={depth: 3}", "model.kwargs of small_cnn"),
        ("model.name=resnet9000", "unknown model 'resnet9000'"),
        ("run.variants=[none, nope]", "run.variants="),
        ("selectors.energy.m_in=0", "selectors.energy: need m_in < m_out"),
        ("selectors.energy.alpha=-1", "selectors.energy.alpha=-1"),
    ],
)
def test_bad_values_are_refused_before_any_work(item, fragment):
    with pytest.raises(UserError) as err:
        load_config(sets=[item])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_names_the_closest_valid_keys():
    with pytest.raises(UserError, match="did you mean eps"):
        load_config(sets=["resample.epz=0.5"])
    with pytest.raises(UserError, match="did you mean finetune"):
        load_config(sets=["fintune.lr=0.1"])


def test_binary_and_broken_config_files(tmp_path):
    binary = tmp_path / "c.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UserError, match="not a text"):
        load_config(binary)
    broken = tmp_path / "d.yaml"
    broken.write_text("finetune: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(broken)
    listed = tmp_path / "e.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        load_config(listed)


# -- bounded parsing (issue 22, item 4) ---------------------------------------------------------

#: A YAML alias bomb: each level repeats the one before nine times (9**8 strings if expanded).
BOMB = (
    "["
    + ", ".join(
        [f"&a0 [{', '.join(['lol'] * 9)}]"]
        + [f"&a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    )
    + "]"
)


@pytest.mark.parametrize("where", ["config", "evaluate.ood", "set"])
def test_an_alias_bomb_is_one_short_line(where, tmp_path, tiny, capsys):
    args = ["evaluate", "--checkpoint", "ck.safetensors", "--out", str(tmp_path / "o"), *tiny]
    if where == "set":
        args += ["--set", f"seed={BOMB}"]
    else:
        f = tmp_path / "bomb.yaml"
        f.write_text(f"seed: {BOMB}\n" if where == "config" else f"evaluate:\n  ood: {BOMB}\n")
        args += ["--config", str(f)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300, err
    assert "YAML alias" in err and "write the values out" in err
    assert not (tmp_path / "o").exists()


def test_huge_config_files_and_values_are_refused_and_quoted_short(tmp_path, tiny, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("seed: " + "x" * (2 << 20) + "\n")
    with pytest.raises(UserError, match="larger than 1,048,576 bytes") as e:
        load_config(big)
    assert len(str(e.value)) < 300
    mid = tmp_path / "mid.yaml"
    mid.write_text("seed: " + "x" * 500_000 + "\n")  # under the cap, a wrong value
    with pytest.raises(
        UserError, match=r"seed='xxx.*\.\.\. \(500,002 characters\) is invalid"
    ) as e:
        load_config(mid)
    assert len(str(e.value)) < 300
    with pytest.raises(UserError, match="unknown config key") as e:
        load_config(sets=["k" * 10_000 + "=1"])
    assert len(str(e.value)) < 400
    with pytest.raises(UserError, match="longer than") as e:
        parse_set("seed=" + "1" * (2 << 20))
    assert len(str(e.value)) < 300


def test_anchors_without_aliases_and_plain_strings_still_parse():
    assert parse_set("data.mean=[0.5, 0.5, 0.5]") == {"data": {"mean": [0.5, 0.5, 0.5]}}
    assert parse_set("model.name=not: valid: yaml") == {"model": {"name": "not: valid: yaml"}}
    assert parse_set("seed=&a 3") == {"seed": 3}


def test_the_config_command_prints_what_run_would_write(tmp_path, capsys):
    assert main(["config", "--quick", "--set", "selectors.ntom.quantile=0.25", "--seeds", "3"]) == 0
    printed = capsys.readouterr().out
    cfg = yaml.safe_load(printed)
    assert cfg["selectors"]["ntom"] == {"candidates": 4.0, "quantile": 0.25}
    assert cfg["run"]["seeds"] == 3 and cfg["pretrain"]["epochs"] == 8  # --quick's
    assert load_config(sets=["selectors.ntom.quantile=0.25"]).selectors.ntom.quantile == 0.25
    (tmp_path / "c.yaml").write_text(printed)
    assert load_config(tmp_path / "c.yaml").to_dict() == cfg  # it round-trips through --config
    assert not list(tmp_path.glob("runs"))
