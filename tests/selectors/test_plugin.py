"""A selector defined in this file alone is a variant of `compare-selectors --quick` and of
`finetune`, with its config section, its option checks and its random stream: a new selector is
one file."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from bgresample.cli import main
from bgresample.config import dump, load_config
from bgresample.errors import UserError
from bgresample.options import POSITIVE_INT, option
from bgresample.selectors import SELECTORS, SelectionContext, Selector, register_selector


class EveryOther(Selector):
    """Each background epoch: a random offset, then every ``stride``-th pool item, at most k."""

    @dataclass
    class Options:
        stride: int = option(2, POSITIVE_INT, "keep every stride-th item")

    name = "every-other"
    refresh = "epoch"
    streams = {"offset": 9_001}
    summary_line = "every stride-th pool item from a random offset (a test plug-in)"

    def __init__(self, ctx: SelectionContext, **options: int) -> None:
        super().__init__(ctx, **options)
        self.calls = 0

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        stride = self.opts.stride
        start = int(torch.randint(stride, (1,), generator=self.rng("offset", epoch)))
        return torch.arange(start, len(self.ctx.pool), stride)[: self.ctx.budget]


@pytest.fixture
def plugin():
    register_selector(EveryOther)
    yield EveryOther
    SELECTORS.pop(EveryOther.name)


def test_the_plugin_gets_a_config_section_with_its_checks(plugin):
    cfg = load_config(sets=["selectors.every-other.stride=3"])
    assert cfg.selectors.to_options()["every-other"] == {"stride": 3}
    assert "every-other:\n    stride: 3" in dump(cfg)
    with pytest.raises(UserError, match="selectors.every-other.stride=0 is invalid"):
        load_config(sets=["selectors.every-other.stride=0"])
    with pytest.raises(UserError, match="valid keys here: stride"):
        load_config(sets=["selectors.every-other.width=3"])


def test_the_plugin_runs_in_compare_selectors_quick(plugin, tmp_path, tiny, capsys):
    out = tmp_path / "sel"
    args = ["compare-selectors", "--quick", "--out", str(out), *tiny, "--ood", "digits89"]
    args += ["--set", "pretrain.epochs=1", "--set", "run.seeds=1"]
    args += ["--selectors", "none,every-other", "--set", "selectors.every-other.stride=3"]
    assert main(args) == 0
    assert "every-other" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == ["none", "every-other"]
    sel = res["selection"]["every-other"]
    assert sel["refresh"] == "epoch" and 0 < sel["distinct_items"] <= res["budget"]["k"] * 10
    assert (out / "seed_0" / "every-other.safetensors").is_file()
    config = (out / "config.yaml").read_text()
    assert "every-other:\n    stride: 3" in config


def test_finetune_takes_the_plugin_as_a_variant(plugin, tmp_path, tiny):
    pre = tmp_path / "pre"
    assert main(["pretrain", "--out", str(pre), *tiny, "--set", "pretrain.epochs=1"]) == 0
    out = tmp_path / "ft"
    args = [
        "finetune",
        "--variant",
        "every-other",
        "--checkpoint",
        str(pre / "pretrain.safetensors"),
    ]
    assert main([*args, "--out", str(out), *tiny, "--set", "pretrain.epochs=1"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    assert info["background"] == "every-other"


def test_a_clashing_declaration_is_refused(plugin):
    class Clash(EveryOther):
        name = "clash"
        streams = {"offset": 9_001}  # the plug-in's stream

    with pytest.raises(ValueError, match="stream offset=9001 is used by every-other"):
        register_selector(Clash)

    class Core(EveryOther):
        name = "core"
        streams = {"offset": 3}  # Stream.BACKGROUND's number

    with pytest.raises(ValueError, match="used by the core streams"):
        register_selector(Core)

    class Taken(EveryOther):
        name = "ntom"

    with pytest.raises(ValueError, match="registered already"):
        register_selector(Taken)
    assert "clash" not in SELECTORS and "core" not in SELECTORS


def test_every_built_in_selector_declares_itself():
    for name, cls in SELECTORS.items():
        assert cls.name == name and cls.summary_line, name
        assert register_selector(cls) is cls  # re-registering the same class is a no-op
