"""Resolve a config's data section into ID train/test, a background pool and OOD test sets.

Two sources: the embedded benchmark (default; no files needed) and user data given as dataset
specs ``KIND:PATH`` (``data.id``, ``data.background``, ``evaluate.ood``; see
:mod:`bgresample.data.kinds`). They can be mixed: e.g. embedded ID with a folder of OOD images.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bgresample.config import Config, DataConfig
from bgresample.data import kinds
from bgresample.data.base import LabeledImages
from bgresample.data.embedded import (
    NEAR_OOD_SETS,
    OOD_SETS,
    UNSHARED_OOD_SETS,
    EmbeddedConfig,
    default_data_root,
    load_embedded,
)
from bgresample.data.pools import ImageSource
from bgresample.data.validation import HOLDOUT, split_id, split_pool
from bgresample.errors import UserError
from bgresample.rng import noise_set_seed

#: Set to 1 only for test fixtures: skips torchvision's md5 check of CIFAR / SVHN files.
SKIP_INTEGRITY_ENV = "BGRESAMPLE_SKIP_INTEGRITY_CHECK"

log = logging.getLogger("bgresample")


@dataclass
class Benchmark:
    """Everything one experiment reads: ID train and test, the background pool (without the
    validation hold-out), the test OOD sets, and the validation data (``val``: ID images carved
    from the training data; ``val_ood``: the pool hold-out), None / empty when disabled.
    ``groups`` names groups of OOD sets averaged apart: ``near`` and ``far`` (the embedded
    benchmark's tags or ``evaluate.near_ood``; far = the others) and, for the embedded benchmark,
    ``unshared`` (made by no generator of a pool family)."""

    name: str
    train: LabeledImages
    test: LabeledImages
    pool: ImageSource
    ood: dict[str, ImageSource]
    num_classes: int
    flip: bool
    background_flip: bool | None = None
    val: LabeledImages | None = None
    val_ood: dict[str, ImageSource] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _builtin_ood_names() -> set[str]:
    """Names that ``--ood NAME`` resolves to a built-in set (an embedded set or a dataset kind
    with a default location or generated), which a folder set may not take."""
    named = {
        k.name
        for k in kinds.KINDS.values()
        if "ood" in k.roles and (not k.needs_path or k.default_subpath is not None)
    }
    return named | set(OOD_SETS) | {"all"}


def _folder_set_name(path: str) -> str:
    """The name of the OOD set ``folder:PATH``: the folder's own name (``/x/greek/`` -> greek)."""
    return Path(os.path.abspath(Path(path).expanduser())).name or "folder"


_RENAME_HINT = (
    "another name (rename it, or pass --ood folder:LINK with LINK a symlink to it named as the "
    "set should be)"
)


def _same_name(name: str, first: str, second: str) -> UserError:
    return UserError(
        f"two OOD sets would both be named '{name}': {first} and {second}; each OOD set needs its "
        f"own name, and a set given as folder:PATH is named after its folder; give a folder "
        f"{_RENAME_HINT}"
    )


def _groups(cfg: Config, names: list[str], embedded: bool) -> dict[str, list[str]]:
    """The OOD set groups averaged apart: near / far, and unshared for the embedded benchmark."""
    near_names = cfg.evaluate.near_ood
    if near_names is None:
        near_names = list(NEAR_OOD_SETS) if embedded else []
    unknown = [n for n in near_names if n not in names]
    if cfg.evaluate.near_ood is not None and unknown:
        raise UserError(
            f"evaluate.near_ood names {', '.join(unknown)}, which are not among the OOD sets "
            f"({', '.join(names)}); fix with --set evaluate.near_ood=[...]"
        )
    near = [n for n in names if n in near_names]
    groups = {"near": near, "far": [n for n in names if n not in near]} if near else {}
    if embedded:
        groups["unshared"] = [n for n in names if n in UNSHARED_OOD_SETS]
    return groups


def resolve_flip(flip: bool | str, id_kind: str | None) -> bool:
    """``data.flip``: ``auto`` flips unless the ID data are digits (the embedded digits, or a kind
    declared with ``mirror=False``: SVHN, MNIST), as the authors' code does."""
    if flip != "auto":
        return bool(flip)
    return id_kind is not None and kinds.get_kind(id_kind, "id").mirror


def check_pool_given(data: DataConfig) -> None:
    """Refuse a config that names its own ID data but no background pool (the embedded pool
    goes only with the embedded ID data). An unknown ID kind is named first."""
    if data.id is not None and data.background is None:
        kinds.get_kind(kinds.parse_spec(data.id)[0], "id")
        raise UserError(
            "no background pool: with --id KIND:PATH also give --background KIND:PATH "
            "(e.g. random300k:/data/300K_random_images.npy)"
        )


def load_benchmark(cfg: Config, ood_names: list[str] | None = None) -> Benchmark:
    """Load ID data, the background pool and the OOD sets that the config names."""
    data = cfg.data
    root = data.root if data.root is not None else str(default_data_root())
    log.info("data root: %s", root)
    check = os.environ.get(SKIP_INTEGRITY_ENV) != "1"
    download = data.download
    wanted = ood_names if ood_names is not None else cfg.evaluate.ood
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    embedded = None
    if data.id is None:
        emb = asdict(data.embedded)
        seed = emb.pop("seed")
        embedded = load_embedded(root, seed=seed, config=EmbeddedConfig(**emb))
        train, test, classes = embedded.train, embedded.test, list(embedded.classes)
        name = "embedded"
    else:
        kind, path = kinds.parse_spec(data.id)
        train, test, classes = kinds.load_id(
            kind, path, data_root=root, download=download, check_integrity=check
        )
        name = kind
    check_pool_given(data)
    if data.background is not None:
        kind, path = kinds.parse_spec(data.background)
        pool = kinds.load_background(
            kind,
            path,
            data_root=root,
            allow_cifar_overlap=data.allow_cifar_overlap,
            download=download,
            check_integrity=check,
        )
    else:
        assert embedded is not None
        pool = embedded.pool
    ood: dict[str, ImageSource] = {}
    # Set names (lower-cased) -> where each set came from, to refuse two sets of one name where
    # a folder set is involved; the same built-in set named twice is simply kept once.
    origin: dict[str, str] = {}
    folder_sets: set[str] = set()

    def add(set_name: str, images: ImageSource, where: str, folder: bool = False) -> None:
        key = set_name.lower()
        if key in origin and (folder or key in folder_sets) and origin[key] != where:
            raise _same_name(set_name, origin[key], where)
        origin[key] = where
        if folder:
            folder_sets.add(key)
        ood[set_name] = images

    noise_n = data.embedded.noise_ood_size
    builtin = _builtin_ood_names()
    for i, spec in enumerate(wanted):
        if embedded is not None and spec == "all":
            for set_name, images in embedded.ood.items():
                add(set_name, images, f"the embedded set {set_name}")
        elif embedded is not None and spec in embedded.ood:
            add(spec, embedded.ood[spec], f"the embedded set {spec}")
        elif spec == "all":
            raise UserError(
                "evaluate.ood=all needs the embedded ID data; name the OOD sets with --ood"
            )
        else:
            if embedded is not None and ":" not in spec and spec not in kinds.KINDS:
                valid = ", ".join([*embedded.ood, "all"])
                raise UserError(
                    f"unknown OOD set '{spec}'; valid: {valid}, or a dataset KIND[:PATH] "
                    f"({', '.join(k for k, v in kinds.KINDS.items() if 'ood' in v.roles)})"
                )
            kind, path = kinds.parse_spec(spec)
            if kind == "folder" and path is not None:
                set_name, folder = _folder_set_name(path), True
                key = set_name.lower()
                if key in builtin:
                    raise UserError(
                        f"OOD set {spec} would be named '{set_name}' after its folder, the name "
                        f"of the built-in OOD set '{key}' (--ood {key}), so the results could "
                        f"not tell them apart; give the folder {_RENAME_HINT}"
                    )
                if origin.get(key, spec) != spec:  # fail before loading the folder
                    raise _same_name(set_name, origin[key], spec)
            else:
                if kind in folder_sets:  # a folder took the name: no silent "KIND-2"
                    raise _same_name(kind, origin[kind], spec)
                set_name, folder = _unique(kind, ood), False
            images = kinds.load_ood(
                kind,
                path,
                data_root=root,
                n=noise_n,
                seed=noise_set_seed(cfg.seed, i),
                download=download,
                check_integrity=check,
            )
            add(set_name, images, spec, folder)
    if not ood:
        raise UserError("no OOD test set given; pass --ood NAME or KIND:PATH (repeatable)")
    for key, images in ood.items():
        if len(images) == 0:
            raise UserError(f"OOD set '{key}' is empty; check its path")
    num_classes = len(classes)
    try:
        train, val = split_id(train, data.validation.id_fraction, data.validation.seed)
        pool, holdout = split_pool(pool, data.validation.pool_fraction, data.validation.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    return Benchmark(
        name=name,
        train=train,
        test=test,
        pool=pool,
        ood=ood,
        num_classes=num_classes,
        flip=resolve_flip(data.flip, None if embedded is not None else name),
        background_flip=data.background_flip,
        val=val,
        val_ood={} if holdout is None else {HOLDOUT: holdout},
        groups=_groups(cfg, list(ood), embedded is not None),
    )
