"""Resolve a config's data section into ID train/test, a background pool and OOD test sets.

Two sources: a built-in benchmark (``data.benchmark``: ``embedded``, the default, needs no files;
``mnist``, full MNIST with a pool and OOD sets built from pip-packaged data,
:mod:`bgresample.data.mnist_bench`) and user data given as dataset specs ``KIND:PATH``
(``data.id``, ``data.background``, ``evaluate.ood``; see :mod:`bgresample.data.kinds`). They
can be mixed: e.g. the built-in ID data with a folder of OOD images.
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
from bgresample.data.mnist_bench import OOD_SETS as MNIST_OOD_SETS
from bgresample.data.mnist_bench import MnistBenchConfig, load_mnist_bench
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
    from the training data; ``val_ood``: the pool hold-out and the built-in benchmark's
    validation OOD sets, the embedded one's ``val-glyphs``), None / empty when disabled.
    ``groups`` names groups of OOD sets averaged apart: ``near`` and ``far`` (the built-in
    benchmark's tags or ``evaluate.near_ood``; far = the others) and, for the embedded benchmark,
    ``unshared`` (made by no generator of a pool family). ``shifted``: labelled covariate-shifted
    ID sets (the MNIST benchmark's), evaluated apart from the OOD sets: a detector should accept
    them."""

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
    shifted: dict[str, LabeledImages] = field(default_factory=dict)


#: ``results.json``'s ``benchmark`` for ``data.benchmark=mnist`` (``mnist`` alone would read as
#: the torchvision ``mnist`` kind given as ``data.id``).
MNIST_BENCHMARK = "mnist-bench"


@dataclass
class BuiltIn:
    """A built-in benchmark as :func:`load_benchmark` uses it: ID data, pool, OOD sets, the
    near-OOD tags, the sets of the ``unshared`` group (None: no such group), shifted ID sets and
    validation OOD sets of its own (the embedded benchmark's ``val-glyphs``; none for MNIST)."""

    name: str
    train: LabeledImages
    test: LabeledImages
    pool: ImageSource
    ood: dict[str, ImageSource]
    classes: list[str]
    near: tuple[str, ...]
    unshared: tuple[str, ...] | None = None
    shifted: dict[str, LabeledImages] = field(default_factory=dict)
    val_ood: dict[str, ImageSource] = field(default_factory=dict)


def mnist_config(data: DataConfig) -> tuple[int, MnistBenchConfig]:
    """The MNIST benchmark's seed and :class:`MnistBenchConfig` of ``data.mnist``."""
    sizes = asdict(data.mnist)
    seed = sizes.pop("seed")
    return seed, MnistBenchConfig(**sizes)


def load_builtin(data: DataConfig, root: str) -> BuiltIn:
    """The built-in benchmark ``data.benchmark``; the MNIST one's sources are fetched with
    ``data.download``, else a missing source is one error naming the command that fetches it."""
    if data.benchmark == "mnist":
        seed, config = mnist_config(data)
        m = load_mnist_bench(root, seed, config, download=data.download, log=log.info)
        return BuiltIn(
            name=MNIST_BENCHMARK,
            train=m.train,
            test=m.test,
            pool=m.pool,
            ood=dict(m.ood),
            classes=list(m.classes),
            near=tuple(m.near_ood),
            shifted=dict(m.shifted),
        )
    emb = asdict(data.embedded)
    seed = emb.pop("seed")
    embedded = load_embedded(root, seed=seed, config=EmbeddedConfig(**emb))
    return BuiltIn(
        name="embedded",
        train=embedded.train,
        test=embedded.test,
        pool=embedded.pool,
        ood=embedded.ood,
        classes=list(embedded.classes),
        near=NEAR_OOD_SETS,
        unshared=UNSHARED_OOD_SETS,
        val_ood=dict(embedded.val_ood),
    )


def noise_size(data: DataConfig) -> int:
    """Items of a generated OOD set (``gaussian``, ``uniform``) named as a dataset kind: the
    size of the built-in benchmark's noise sets."""
    if data.id is None and data.benchmark == "mnist":
        return data.mnist.noise_ood_size
    return data.embedded.noise_ood_size


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _builtin_ood_names(benchmark: str = "embedded") -> set[str]:
    """Names that ``--ood NAME`` resolves to a built-in set (a set of the embedded benchmark or
    of ``benchmark``, or a dataset kind with a default location or generated), which a folder
    set may not take."""
    named = {
        k.name
        for k in kinds.KINDS.values()
        if "ood" in k.roles and (not k.needs_path or k.default_subpath is not None)
    }
    extra = set(MNIST_OOD_SETS) if benchmark == "mnist" else set()
    return named | set(OOD_SETS) | extra | {"all"}


def user_set_name(kind: str, path: str | None) -> str | None:
    """The name of an OOD set the user's path names: ``folder:PATH`` the folder's own name
    (``/x/greek/`` -> greek), ``npy:PATH`` the file's stem (``/x/300K.npy`` -> 300K); None for
    the other kinds (named after the kind)."""
    if path is None or kind not in ("folder", "npy"):
        return None
    where = Path(os.path.abspath(Path(path).expanduser()))
    return (where.name if kind == "folder" else where.stem) or kind


_RENAME_HINT = (
    "another name (rename it, or pass --ood KIND:LINK with LINK a symlink to it named as the "
    "set should be)"
)


def _same_name(name: str, first: str, second: str) -> UserError:
    return UserError(
        f"two OOD sets would both be named '{name}': {first} and {second}; each OOD set needs its "
        f"own name, and a set given as folder:PATH or npy:PATH is named after its folder or "
        f"file; give a folder or file {_RENAME_HINT}"
    )


def _groups(cfg: Config, names: list[str], builtin: BuiltIn | None) -> dict[str, list[str]]:
    """The OOD set groups averaged apart: near / far (``evaluate.near_ood``, else the built-in
    benchmark's tags), and unshared for the embedded benchmark with its own pool (the sets made
    by no generator of its pool's families)."""
    near_names = cfg.evaluate.near_ood
    if near_names is None:
        near_names = list(builtin.near) if builtin is not None else []
    unknown = [n for n in near_names if n not in names]
    if cfg.evaluate.near_ood is not None and unknown:
        raise UserError(
            f"evaluate.near_ood names {', '.join(unknown)}, which are not among the OOD sets "
            f"({', '.join(names)}); fix with --set evaluate.near_ood=[...]"
        )
    near = [n for n in names if n in near_names]
    groups = {"near": near, "far": [n for n in names if n not in near]} if near else {}
    if builtin is not None and builtin.unshared is not None and cfg.data.background is None:
        groups["unshared"] = [n for n in names if n in builtin.unshared]
    return groups


#: Data roots, and user pools' hold-outs, already named in the log.
_LOGGED_ROOTS: set[str] = set()
_LOGGED_HOLDOUTS: set[tuple[str, float]] = set()


def resolve_flip(flip: bool | str, id_kind: str | None) -> bool:
    """``data.flip``: ``auto`` flips unless the ID data are digits (the embedded digits, or a kind
    declared with ``mirror=False``: SVHN, MNIST), as the authors' code does."""
    if flip != "auto":
        return bool(flip)
    return id_kind is not None and kinds.get_kind(id_kind, "id").mirror


def check_pool_given(data: DataConfig) -> None:
    """Refuse a config that names its own ID data but no background pool (a built-in pool goes
    only with its benchmark's ID data). An unknown ID kind is named first."""
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
    if root not in _LOGGED_ROOTS:  # once per process (the report loads the data again)
        log.info("data root: %s", root)
        if not os.path.isdir(root) and data.id is None:  # a built-in benchmark is read there
            log.info("  (a new folder; data elsewhere? give --data-root or set $BGRESAMPLE_DATA)")
        _LOGGED_ROOTS.add(root)
    check = os.environ.get(SKIP_INTEGRITY_ENV) != "1"
    download = data.download
    wanted = ood_names if ood_names is not None else cfg.evaluate.ood
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    builtin = None
    if data.id is None:
        builtin = load_builtin(data, root)
        train, test, classes, name = builtin.train, builtin.test, builtin.classes, builtin.name
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
        assert builtin is not None
        pool = builtin.pool
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

    noise_n = noise_size(data)
    reserved = _builtin_ood_names(data.benchmark if builtin is not None else "embedded")
    for i, spec in enumerate(wanted):
        if builtin is not None and spec == "all":
            for set_name, images in builtin.ood.items():
                add(set_name, images, f"the {builtin.name} set {set_name}")
        elif builtin is not None and spec in builtin.ood:
            add(spec, builtin.ood[spec], f"the {builtin.name} set {spec}")
        elif spec == "all":
            raise UserError(
                "evaluate.ood=all needs the embedded ID data; name the OOD sets with --ood"
            )
        else:
            if builtin is not None and ":" not in spec and spec not in kinds.KINDS:
                valid = ", ".join([*builtin.ood, "all"])
                raise UserError(
                    f"unknown OOD set '{spec}'; valid: {valid}, or a dataset KIND[:PATH] "
                    f"({', '.join(k for k, v in kinds.KINDS.items() if 'ood' in v.roles)})"
                )
            kind, path = kinds.parse_spec(spec)
            named = user_set_name(kind, path)
            if named is not None:
                set_name, folder = named, True
                key = set_name.lower()
                noun = "folder" if kind == "folder" else "file"
                if key in reserved:
                    raise UserError(
                        f"OOD set {spec} would be named '{set_name}' after its {noun}, the name "
                        f"of the built-in OOD set '{key}' (--ood {key}), so the results could "
                        f"not tell them apart; give the {noun} {_RENAME_HINT}"
                    )
                if origin.get(key, spec) != spec:  # fail before loading the data
                    raise _same_name(set_name, origin[key], spec)
            else:
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
    said = (data.background, data.validation.pool_fraction)
    if holdout is not None and data.background is not None and said not in _LOGGED_HOLDOUTS:
        log.info(
            "pool: %d items; %d more held out as validation OOD data, never trained on nor "
            "selected (data.validation.pool_fraction=%g; 0 keeps them all)",
            len(pool),
            len(holdout),
            data.validation.pool_fraction,
        )
        _LOGGED_HOLDOUTS.add(said)
    val_ood: dict[str, ImageSource] = {} if holdout is None else {HOLDOUT: holdout}
    if val is not None and builtin is not None:  # the built-in ID data's own validation OOD sets
        val_ood.update(builtin.val_ood)
    return Benchmark(
        name=name,
        train=train,
        test=test,
        pool=pool,
        ood=ood,
        num_classes=num_classes,
        flip=resolve_flip(data.flip, None if builtin is not None else name),
        background_flip=data.background_flip,
        val=val,
        val_ood=val_ood,
        groups=_groups(cfg, list(ood), builtin),
        shifted={} if builtin is None else builtin.shifted,
    )
