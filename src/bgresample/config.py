"""Configuration: YAML defaults, ``--config FILE`` and ``--set key=value`` overrides.

A resolved config is a plain nested dict; every run writes it to ``config.yaml`` in its folder,
and ``--config run/config.yaml`` re-runs it.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bgresample.errors import UserError

#: Recipes for fine-tuning with background data (METHOD.md).
FINETUNE_RECIPES: dict[str, dict[str, Any]] = {
    "authors": {"epochs": 50, "lr": 0.1, "schedule": "step30", "background_batch_size": 128},
    "oe": {"epochs": 10, "lr": 0.001, "schedule": "cosine", "background_batch_size": 256},
}


def default_config() -> dict[str, Any]:
    """The packaged defaults (``bgresample/configs/default.yaml``)."""
    text = resources.files("bgresample").joinpath("configs/default.yaml").read_text()
    return yaml.safe_load(text)


def merge(base: dict[str, Any], override: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys are an error."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in out:
            valid = ", ".join(sorted(out))
            raise UserError(f"unknown config key '{where}'; valid keys here: {valid}")
        if isinstance(out[key], dict) and isinstance(value, dict) and key != "kwargs":
            out[key] = merge(out[key], value, where + ".")
        else:
            out[key] = value
    return out


def parse_set(item: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML."""
    if "=" not in item:
        raise UserError(f"--set expects key=value (e.g. resample.eps=0.25), got '{item}'")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    node: dict[str, Any] = {}
    cur = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return node


def presets() -> list[str]:
    """Names of the packaged presets (``bgresample/configs/presets/*.yaml``)."""
    folder = resources.files("bgresample").joinpath("configs/presets")
    return sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{where} is not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{where} must hold a mapping of config keys, got {type(loaded).__name__}")
    return loaded


def load_config(
    path: str | Path | None = None, sets: list[str] | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Defaults, then a preset, then the YAML file at ``path``, then each ``key=value``.

    A fine-tuning recipe (``finetune.recipe``) is expanded into the ``finetune`` section after
    the preset and file and before the ``--set`` overrides, so the resolved config holds the
    values actually used.
    """
    cfg = default_config()
    if preset is not None:
        if preset not in presets():
            raise UserError(f"unknown preset '{preset}'; valid presets: {', '.join(presets())}")
        text = resources.files("bgresample").joinpath(f"configs/presets/{preset}.yaml").read_text()
        cfg = merge(cfg, _read_yaml(text, f"preset {preset}"))
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} not found; pass an existing YAML file to --config")
        cfg = merge(cfg, _read_yaml(p.read_text(), f"config file {p}"))
    overrides = [parse_set(item) for item in sets or []]
    probe = cfg
    for o in overrides:
        probe = merge(probe, o)
    recipe = probe["finetune"].get("recipe", "custom")
    if recipe != "custom":
        if recipe not in FINETUNE_RECIPES:
            valid = ", ".join(["custom", *FINETUNE_RECIPES])
            raise UserError(f"unknown finetune.recipe '{recipe}'; valid: {valid}")
        cfg = merge(cfg, {"finetune": FINETUNE_RECIPES[recipe]})
    for o in overrides:
        cfg = merge(cfg, o)
    return cfg


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


def validate(cfg: dict[str, Any]) -> None:
    """Check the ranges that the method requires; raise one clear :class:`UserError` otherwise."""

    def check(key: str, ok: bool, expected: str) -> None:
        if not ok:
            section, name = key.split(".")
            raise UserError(
                f"{key}={cfg[section][name]!r} is invalid: expected {expected} "
                f"(fix with --set {key}=...)"
            )

    r, s, f = cfg["resample"], cfg["select"], cfg["finetune"]
    check("resample.eps", 0.0 <= float(r["eps"]) <= 1.0, "a number in [0, 1]")
    check("select.gamma", 0.0 < float(s["gamma"]) <= 1.0, "a number in (0, 1]")
    for key in ("resample.alpha", "finetune.alpha"):
        sec, name = key.split(".")
        check(key, float(cfg[sec][name]) >= 0, "a non-negative number")
    for key in ("pretrain.lr", "resample.lr", "resample.lr_w", "finetune.lr"):
        sec, name = key.split(".")
        check(key, float(cfg[sec][name]) > 0, "a positive learning rate")
    for key in ("pretrain.batch_size", "resample.batch_size", "finetune.batch_size"):
        sec, name = key.split(".")
        check(key, int(cfg[sec][name]) >= 1, "a positive integer")
    check("resample.draws_per_item", float(r["draws_per_item"]) > 0, "a positive number")
    check("evaluate.ratio", 0 < float(cfg["evaluate"]["ratio"]) <= 1, "a number in (0, 1]")
    check("run.seeds", int(cfg["run"]["seeds"]) >= 1, "a positive integer")
    check("finetune.epochs", int(f["epochs"]) >= 0, "a non-negative integer")
    workers = cfg["data"]["workers"]
    check("data.workers", isinstance(workers, int) and workers >= 0, "a non-negative integer")
