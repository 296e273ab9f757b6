"""Configuration: YAML defaults, ``--config FILE`` and ``--set key=value`` overrides, checked
against a typed schema before any work starts.

The values live in ``bgresample/configs/default.yaml`` (and the presets); the dataclasses below
are the schema: each key's type and allowed range. :func:`load_config` merges defaults, preset,
file, recipe and overrides as plain dicts, then builds a :class:`Config`, refusing an unknown key
(naming the closest valid ones), a value of the wrong type or out of range, each with one
message that says how to fix it. Every run writes the resolved config to ``config.yaml`` in its
folder, and ``--config run/config.yaml`` re-runs it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from bgresample.errors import UserError, shorten
from bgresample.options import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    UNIT_CLOSED,
    UNIT_HALF_OPEN,
    UNIT_RIGHT_OPEN,
    check,
)

#: Recipes for fine-tuning with background data (docs/method.md).
FINETUNE_RECIPES: dict[str, dict[str, Any]] = {
    "authors": {
        "epochs": 50,
        "lr": 0.1,
        "schedule": "step30",
        "background_batch_size": 128,
        "background_order": "shuffle",
    },
    "oe": {"epochs": 10, "lr": 0.001, "schedule": "cosine", "background_batch_size": 256},
}

Auto = bool | Literal["auto"]
Schedule = Literal["cosine", "step", "step30", "constant"]
SelectMethod = Literal["authors", "weighted", "topk", "random", "full"]
Convention = Literal["ood-positive", "id-positive"]
#: The built-in benchmarks (``data.benchmark``), used where ``data.id`` is null.
BenchmarkName = Literal["embedded", "mnist"]


def _f(rule: dict[str, Any] | None = None) -> Any:
    """A schema field; the value comes from the YAML defaults."""
    return field(metadata=rule or {})


# -- the schema -----------------------------------------------------------------------------------


@dataclass
class EmbeddedSizes:
    seed: int = _f(NON_NEGATIVE_INT)
    pool_size: int = _f(POSITIVE_INT)
    test_fraction: float = _f(check(lambda v: 0 < v < 1, "a number in (0, 1)"))
    ood_size: int = _f(POSITIVE_INT)
    noise_ood_size: int = _f(POSITIVE_INT)
    family_shares: dict[str, float] = _f()


@dataclass
class MnistSizes:
    """``data.mnist``: the MNIST benchmark (:class:`bgresample.data.mnist_bench.MnistBenchConfig`
    and the benchmark's own seed)."""

    seed: int = _f(NON_NEGATIVE_INT)
    id_source: Literal["mnist", "mnist5k"] = _f()
    test_fraction: float = _f(check(lambda v: 0 < v < 1, "a number in (0, 1)"))
    pool_size: int = _f(POSITIVE_INT)
    ood_size: int = _f(POSITIVE_INT)
    noise_ood_size: int = _f(POSITIVE_INT)
    min_crop_std: float = _f(NON_NEGATIVE)
    family_shares: dict[str, float] = _f()


@dataclass
class ValidationConfig:
    id_fraction: float = _f(UNIT_RIGHT_OPEN)
    pool_fraction: float = _f(UNIT_RIGHT_OPEN)
    seed: int = _f(NON_NEGATIVE_INT)


@dataclass
class DataConfig:
    root: str | None = _f()
    id: str | None = _f()
    background: str | None = _f()
    download: bool = _f()
    flip: Auto = _f()
    background_flip: bool | None = _f()
    allow_cifar_overlap: bool = _f()
    workers: int = _f(NON_NEGATIVE_INT)
    size: int = _f(POSITIVE_INT)
    mean: list[float] = _f(check(lambda v: len(v) == 3, "a list of 3 numbers, one per channel"))
    std: list[float] = _f(
        check(
            lambda v: len(v) == 3 and all(x > 0 for x in v),
            "a list of 3 positive numbers, one per channel",
        )
    )
    validation: ValidationConfig = _f()
    benchmark: BenchmarkName = _f()
    embedded: EmbeddedSizes = _f()
    mnist: MnistSizes = _f()


@dataclass
class ModelConfig:
    name: str = _f()
    kwargs: dict[str, Any] = _f()


@dataclass
class AccelConfig:
    channels_last: Auto = _f()
    amp: Auto = _f()
    compile: bool = _f()
    data_on_device: Auto = _f()
    compile_weights: Auto = _f()


@dataclass
class PretrainConfig:
    epochs: int = _f(POSITIVE_INT)
    batch_size: int = _f(POSITIVE_INT)
    lr: float = _f(POSITIVE)
    momentum: float = _f(NON_NEGATIVE)
    weight_decay: float = _f(NON_NEGATIVE)
    schedule: Schedule = _f()
    drop_last: bool = _f()
    checkpoint_every: int = _f(NON_NEGATIVE_INT)


@dataclass
class ResampleConfig:
    epochs: int = _f(NON_NEGATIVE_INT)
    draws_per_item: float = _f(POSITIVE)
    batch_size: int = _f(POSITIVE_INT)
    eps: float = _f(UNIT_CLOSED)
    lr: float = _f(POSITIVE)
    schedule: Schedule = _f()
    momentum: float = _f(NON_NEGATIVE)
    weight_decay: float = _f(NON_NEGATIVE)
    lr_w: float = _f(POSITIVE)
    momentum_w: float = _f(UNIT_RIGHT_OPEN)
    alpha: float = _f(NON_NEGATIVE)
    freeze_bn: bool = _f()
    refresh: Literal["pool-epoch", "id-epoch"] = _f()
    refresh_every: int = _f(NON_NEGATIVE_INT)
    weight_loss: Literal["scaled", "plain"] = _f()
    check_every: int = _f(NON_NEGATIVE_INT)
    loss: str = _f()


@dataclass
class SelectConfig:
    gamma: float = _f(UNIT_HALF_OPEN)
    method: SelectMethod = _f()


@dataclass
class FinetuneConfig:
    recipe: Literal["custom", "authors", "oe"] = _f()
    epochs: int = _f(NON_NEGATIVE_INT)
    batch_size: int = _f(POSITIVE_INT)
    background_batch_size: int = _f(POSITIVE_INT)
    background_order: Literal["replacement", "shuffle"] = _f()
    lr: float = _f(POSITIVE)
    momentum: float = _f(NON_NEGATIVE)
    weight_decay: float = _f(NON_NEGATIVE)
    schedule: Schedule = _f()
    alpha: float = _f(NON_NEGATIVE)
    freeze_bn: bool = _f()
    loss: str = _f()
    checkpoint_every: int = _f(NON_NEGATIVE_INT)


@dataclass
class EvaluateConfig:
    ood: str | list[str] = _f()
    ratio: float = _f(UNIT_HALF_OPEN)
    repeats: int = _f(POSITIVE_INT)
    convention: Convention = _f()
    fpr95: Literal["roc", "authors"] = _f()
    std_ddof: int = _f(check(lambda v: v in (0, 1), "0 or 1"))
    protocol: Literal["paper", "full"] = _f()
    near_ood: list[str] | None = _f()
    batch_size: int = _f(POSITIVE_INT)


@dataclass
class RunConfig:
    seeds: int = _f(POSITIVE_INT)
    variants: list[str] = _f()


@dataclass
class LogConfig:
    """``log``: where training curves go besides TensorBoard (:mod:`bgresample.scalars`)."""

    wandb: bool = _f()


def _plugin_options() -> dict[str, type]:
    """The ``selectors.NAME`` sections: each selector's and each background loss's options."""
    from bgresample.losses.registry import config_options as loss_options
    from bgresample.selectors import config_options

    selectors, losses = config_options(), loss_options()
    both = sorted(set(selectors) & set(losses))
    if both:
        raise ValueError(f"a selector and a loss share the config section selectors.{both[0]}")
    return {**selectors, **losses}


@dataclass
class SelectorsConfig:
    """``selectors.*``: the fixed keys, and one section per registered selector or background
    loss with options (``selectors.NAME.OPTION``, built from its ``Options`` dataclass: defaults
    and checks live there, :mod:`bgresample.selectors.registry`,
    :mod:`bgresample.losses.registry`)."""

    names: list[str] = _f()
    max_seeds: int = _f(POSITIVE_INT)
    score: str = _f()
    cell_lr: dict[str, float] = _f()
    options: dict[str, Any] = field(default_factory=dict, metadata={"plugins": _plugin_options})

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options") or {}
        if name in options:
            return options[name]
        raise AttributeError(name)

    def to_options(self) -> dict[str, dict[str, Any]]:
        """Keyword arguments of each selector that has options (``build_selector``)."""
        from bgresample.selectors import SELECTORS

        return {
            name: dataclasses.asdict(opts)
            for name, opts in self.options.items()
            if name in SELECTORS
        }


@dataclass
class Config:
    """A resolved configuration (``bgresample/configs/default.yaml`` documents every key)."""

    seed: int = _f(NON_NEGATIVE_INT)
    device: str = _f()
    data: DataConfig = _f()
    model: ModelConfig = _f()
    accel: AccelConfig = _f()
    pretrain: PretrainConfig = _f()
    resample: ResampleConfig = _f()
    select: SelectConfig = _f()
    finetune: FinetuneConfig = _f()
    evaluate: EvaluateConfig = _f()
    run: RunConfig = _f()
    log: LogConfig = _f()
    selectors: SelectorsConfig = _f()

    def to_dict(self) -> dict[str, Any]:
        """The plain nested dict (what ``config.yaml`` holds); plug-in sections sit beside the
        fixed keys of their section."""
        return _plain(self)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = _plain(getattr(obj, f.name))
            if "plugins" in f.metadata:
                out.update(value)
            else:
                out[f.name] = value
        return out
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


# -- building a Config from a dict ---------------------------------------------------------------


def _invalid(path: str, value: Any, expected: str) -> UserError:
    shown = "null" if value is None else shorten(repr(value))
    return UserError(
        f"{shorten(path)}={shown} is invalid: expected {expected} (fix with --set {path}=...)"
    )


def _describe(tp: Any) -> str:
    """The expected type in words."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return "a mapping of " + ", ".join(f.name for f in dataclasses.fields(tp))
    return str(tp)


_NO = object()


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """``value`` as type ``tp``, or ``_NO``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            out = _coerce(arg, value, path)
            if out is not _NO:
                return out
        return _NO
    if tp is type(None):
        return None if value is None else _NO
    if origin is Literal:
        return value if value in typing.get_args(tp) and type(value) is not bool else _NO
    if tp is bool:
        return value if isinstance(value, bool) else _NO
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _NO
    if tp is float:
        if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                return _NO
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else _NO
    if tp is str:
        return value if isinstance(value, str) else _NO
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str) and item is str:  # --set key=a,b,c
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            return _NO
        out = [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return _NO if any(v is _NO for v in out) else out
    if origin is dict:
        return dict(value) if isinstance(value, dict) else _NO
    raise TypeError(f"unsupported schema type {tp!r} at {path}")


def _plugins(cls: type) -> tuple[dataclasses.Field | None, dict[str, type]]:
    """The plug-in field of a schema section (metadata ``plugins``: a function returning
    ``{name: Options}``) and its registered option classes."""
    for f in dataclasses.fields(cls):
        if "plugins" in f.metadata:
            return f, f.metadata["plugins"]()
    return None, {}


def _defaults(options: type) -> dict[str, Any]:
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(options)
    }


def _build(cls: type, raw: Any, path: str) -> Any:
    """An instance of dataclass ``cls`` from the dict ``raw``, every value checked (plug-in
    sections from their ``Options``, defaults filled in)."""
    plug, plugins = _plugins(cls)
    names = [f.name for f in dataclasses.fields(cls) if f is not plug]
    where = f"{path}." if path else ""
    if not isinstance(raw, dict):
        what = "null" if raw is None else shorten(repr(raw))
        raise UserError(
            f"{path or 'the config'} must be a mapping with the keys {', '.join(names)}, got "
            f"{what} (fix with --set {where}KEY=VALUE)"
        )
    for key in raw:
        if key not in names and key not in plugins:
            raise unknown_key(f"{where}{key}", [*names, *plugins])
    missing = [n for n in names if n not in raw]
    if missing:
        raise UserError(f"{path or 'the config'} is missing {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f is plug:
            values[f.name] = {
                name: _build(
                    options,
                    {**_defaults(options), **raw[name]}
                    if isinstance(raw.get(name), dict)
                    else raw.get(name, _defaults(options)),
                    f"{where}{name}",
                )
                for name, options in plugins.items()
            }
            continue
        key, value = f"{where}{f.name}", raw[f.name]
        out = _coerce(hints[f.name], value, key)
        if out is _NO:
            expected = f.metadata.get("expected") or _describe(hints[f.name])
            raise _invalid(key, value, expected)
        check = f.metadata.get("check")
        if check is not None and not check(out):
            raise _invalid(key, value, f.metadata["expected"])
        values[f.name] = out
    return cls(**values)


def unknown_key(path: str, valid: list[str]) -> UserError:
    """An unknown config key, with the closest valid ones."""
    name = path.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name[:200], valid, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return UserError(
        f"unknown config key '{shorten(path)}'; {hint}valid keys here: {', '.join(valid)}"
    )


def from_dict(raw: dict[str, Any]) -> Config:
    """A :class:`Config` from a complete nested dict (defaults merged in), checked by type and
    range, then across keys (:func:`validate`)."""
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


def _valid_variant(name: str) -> bool:
    """``none``, a selector's name, or a cell ``SELECTOR+LOSS`` (not ``none+LOSS``)."""
    from bgresample.losses import BACKGROUND_LOSSES
    from bgresample.selectors import NONE, SELECTORS, variant_parts

    selector, loss = variant_parts(name)
    if loss is None:
        return selector == NONE or selector in SELECTORS
    return selector in SELECTORS and loss in BACKGROUND_LOSSES


def validate(cfg: Config) -> None:
    """Checks that involve registries or several keys; one clear :class:`UserError` each."""
    from bgresample.losses import BACKGROUND_LOSSES, algorithm1_losses, section_of
    from bgresample.models import check_model
    from bgresample.scores import SCORES
    from bgresample.selectors import CELL_SEP, NONE, SELECTORS

    check_model(cfg.model.name, cfg.model.kwargs)
    if cfg.finetune.loss not in BACKGROUND_LOSSES:
        raise _invalid("finetune.loss", cfg.finetune.loss, f"one of {', '.join(BACKGROUND_LOSSES)}")
    if cfg.resample.loss not in algorithm1_losses():
        raise _invalid(
            "resample.loss",
            cfg.resample.loss,
            f"one of {', '.join(algorithm1_losses())} (the per-example losses Algorithm 1 weights)",
        )
    for key, names in (
        ("run.variants", cfg.run.variants),
        ("selectors.names", cfg.selectors.names),
    ):
        bad = [n for n in names if not _valid_variant(n)]
        if bad or not names or len(set(names)) != len(names):
            raise _invalid(
                key,
                names,
                f"a list of distinct names from {', '.join([NONE, *SELECTORS])}, each but "
                f"{NONE} optionally as a cell SELECTOR{CELL_SEP}LOSS with LOSS one of "
                f"{', '.join(BACKGROUND_LOSSES)} (e.g. random{CELL_SEP}energy)",
            )
    score = cfg.selectors.score
    if score != "auto" and score not in SCORES:
        raise _invalid("selectors.score", score, f"auto or one of {', '.join(sorted(SCORES))}")
    bad_lr = {
        k: v
        for k, v in cfg.selectors.cell_lr.items()
        if k not in BACKGROUND_LOSSES
        or not isinstance(v, int | float)
        or isinstance(v, bool)
        or not v > 0
    }
    if bad_lr:
        raise _invalid(
            "selectors.cell_lr",
            cfg.selectors.cell_lr,
            f"positive learning rates keyed by loss ({', '.join(BACKGROUND_LOSSES)}), e.g. "
            "{energy: 0.003}",
        )
    _check_shares("data.embedded.family_shares", cfg.data.embedded.family_shares, EMBEDDED_FAMILIES)
    _check_shares("data.mnist.family_shares", cfg.data.mnist.family_shares, MNIST_FAMILIES)
    for name, spec in BACKGROUND_LOSSES.items():
        if spec.options is not None:
            section = section_of(name)
            try:
                spec.build(cfg.selectors.options[section])
            except ValueError as e:
                raise UserError(
                    f"selectors.{section}: {e} (fix with --set selectors.{section}.OPTION=VALUE)"
                ) from None


#: The pool families of each built-in benchmark (``data.<benchmark>.family_shares``' keys).
EMBEDDED_FAMILIES = ("glyph", "noise", "pattern", "photo")
MNIST_FAMILIES = ("emoji", "glyph", "photo", "sprite")


def _check_shares(key: str, shares: dict[str, Any], families: tuple[str, ...]) -> None:
    """Family shares: keys among ``families``, non-negative numbers, at least one positive."""
    bad = [k for k in shares if k not in families]
    if bad or any(
        not isinstance(v, int | float) or isinstance(v, bool) or not v >= 0 for v in shares.values()
    ):
        raise _invalid(key, shares, f"non-negative shares of the families {', '.join(families)}")
    if sum(shares.values()) <= 0:
        raise _invalid(key, shares, "at least one positive share")


# -- loading ------------------------------------------------------------------------------------


def default_dict() -> dict[str, Any]:
    """The packaged defaults (``bgresample/configs/default.yaml``) as a plain dict."""
    text = resources.files("bgresample").joinpath("configs/default.yaml").read_text()
    out = yaml.safe_load(text)
    _, plugins = _plugins(SelectorsConfig)
    out["selectors"].update({name: _defaults(o) for name, o in plugins.items()})
    return out


def default_config() -> Config:
    """The packaged defaults as a :class:`Config`."""
    return from_dict(default_dict())


def merge(base: dict[str, Any], override: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys are an error."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in out:
            raise unknown_key(where, list(out))
        if isinstance(out[key], dict) and isinstance(value, dict) and key == "cell_lr":
            out[key] = {**out[key], **value}  # keyed by loss: any key, checked by validate
        elif isinstance(out[key], dict) and isinstance(value, dict) and key != "kwargs":
            out[key] = merge(out[key], value, where + ".")
        else:
            out[key] = value
    return out


def parse_set(item: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML
    (:func:`parse_yaml`: no aliases; text that is not YAML is kept as a string)."""
    if len(item) > MAX_CONFIG_BYTES:
        raise UserError(
            f"--set {shorten(item)} is longer than {MAX_CONFIG_BYTES:,} characters; put large "
            "values in a --config file"
        )
    if "=" not in item:
        raise UserError(f"--set expects key=value (e.g. resample.eps=0.25), got '{shorten(item)}'")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(
            f"--set key {shorten(repr(key))} has an empty part; write section.key=value"
        )
    try:
        value = parse_yaml(raw, f"--set {shorten(key)}")
    except _NotYaml:
        value = raw
    node: dict[str, Any] = {}
    cur = node
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return node


def presets() -> list[str]:
    """Names of the packaged presets (``bgresample/configs/presets/*.yaml``)."""
    folder = resources.files("bgresample").joinpath("configs/presets")
    return sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))


#: The largest config file or ``--set`` value read (bytes): configs are a few KiB.
MAX_CONFIG_BYTES = 1 << 20


class _NotYaml(UserError):
    """Text that YAML cannot parse (a ``--set`` value then stays a plain string)."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: ``*name`` could expand a few lines into gigabytes (an alias bomb),
    and configs never need it."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UserError(
                f"uses a YAML alias (*name) at line {mark.line + 1}, column {mark.column + 1}; "
                "config files and --set values may not use anchors and aliases: write the "
                "values out"
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML without aliases (:class:`_NoAliasLoader`); a :class:`UserError`
    naming ``where`` for an alias, and a ``_NotYaml`` for text that is not YAML."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except UserError as e:
        raise UserError(f"{where} {e}") from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _NotYaml(f"{where} is not valid YAML ({shorten(first)})") from None


def _mapping(loaded: Any, where: str) -> dict[str, Any]:
    loaded = loaded or {}
    if not isinstance(loaded, dict):
        raise UserError(f"{where} must hold a mapping of config keys, got {type(loaded).__name__}")
    return loaded


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """The YAML in the file ``path`` (:func:`parse_yaml`; at most :data:`MAX_CONFIG_BYTES`), or
    one :class:`UserError` naming the file and what is wrong with it."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UserError(
            f"{what} {path} is larger than {MAX_CONFIG_BYTES:,} bytes, far more than any config; "
            "pass a YAML file of config keys"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not a text (UTF-8) file; pass a YAML file") from None
    try:
        return parse_yaml(text, f"{what} {path}")
    except _NotYaml as e:
        raise UserError(f"{e}; pass a YAML file of config keys") from None


def load_config(
    path: str | Path | None = None,
    sets: list[str] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Defaults, then a preset, then the YAML file at ``path``, then each ``key=value``, then
    ``overrides`` (a nested dict, e.g. from command-line flags); checked into a :class:`Config`.

    A fine-tuning recipe (``finetune.recipe``, wherever it is named) is expanded into the
    ``finetune`` section just after the preset: it replaces the preset's values, and the file's
    and the ``--set`` values replace its, so the resolved config holds the values actually used.
    """
    cfg = default_dict()
    if preset is not None:
        if preset not in presets():
            raise UserError(f"unknown preset '{preset}'; valid presets: {', '.join(presets())}")
        text = resources.files("bgresample").joinpath(f"configs/presets/{preset}.yaml").read_text()
        cfg = merge(cfg, _mapping(parse_yaml(text, f"preset {preset}"), f"preset {preset}"))
    layers = [parse_set(item) for item in sets or []] + ([overrides] if overrides else [])
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} not found; pass an existing YAML file to --config")
        layers.insert(0, _mapping(read_yaml_file(p), f"config file {p}"))
    probe = cfg
    for layer in layers:
        probe = merge(probe, layer)
    recipe = (
        probe["finetune"].get("recipe", "custom") if isinstance(probe["finetune"], dict) else None
    )
    if recipe in FINETUNE_RECIPES:
        cfg = merge(cfg, {"finetune": FINETUNE_RECIPES[recipe]})
    for layer in layers:
        cfg = merge(cfg, layer)
    return from_dict(cfg)


def dump(cfg: Config) -> str:
    """``cfg`` as YAML, keys in schema order."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a nested mapping (a run's ``config.yaml`` as read); an empty
    mapping is kept as a value, a non-mapping gives no keys."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def flat_config(cfg: Config) -> dict[str, Any]:
    """``cfg`` as ``config.yaml`` holds it (written, then read back as YAML), flattened to
    dotted keys: what a run folder's config is compared with."""
    return flatten(yaml.safe_load(dump(cfg)))
