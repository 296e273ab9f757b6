"""Resolve a config's data section into ID train/test, a background pool and OOD test sets.

Two sources: the embedded benchmark (default; no files needed) and user data given as dataset
specs ``KIND:PATH`` (``data.id``, ``data.background``, ``evaluate.ood``; see
:mod:`bgresample.data.kinds`). They can be mixed: e.g. embedded ID with a folder of OOD images.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from bgresample.config import Config
from bgresample.data import kinds
from bgresample.data.base import LabeledImages
from bgresample.data.embedded import EmbeddedConfig, load_embedded
from bgresample.data.pools import ImageSource
from bgresample.errors import UserError

#: Set to 1 only for test fixtures: skips torchvision's md5 check of CIFAR / SVHN files.
SKIP_INTEGRITY_ENV = "BGRESAMPLE_SKIP_INTEGRITY_CHECK"


@dataclass
class Benchmark:
    """Everything one experiment reads."""

    name: str
    train: LabeledImages
    test: LabeledImages
    pool: ImageSource
    ood: dict[str, ImageSource]
    num_classes: int
    flip: bool


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def load_benchmark(cfg: Config, ood_names: list[str] | None = None) -> Benchmark:
    """Load ID data, the background pool and the OOD sets that the config names."""
    data = cfg.data
    root = data.root
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
    if data.background is not None:
        kind, path = kinds.parse_spec(data.background)
        pool = kinds.load_background(kind, path, data_root=root)
    elif embedded is not None:
        pool = embedded.pool
    else:
        raise UserError(
            "no background pool: with --id KIND:PATH also give --background KIND:PATH "
            "(e.g. random300k:/data/300K_random_images.npy)"
        )
    ood: dict[str, ImageSource] = {}
    noise_n = data.embedded.noise_ood_size
    for i, spec in enumerate(wanted):
        if embedded is not None and spec == "all":
            ood.update(embedded.ood)
        elif embedded is not None and spec in embedded.ood:
            ood[spec] = embedded.ood[spec]
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
            ood[_unique(kind, ood)] = kinds.load_ood(
                kind,
                path,
                data_root=root,
                n=noise_n,
                seed=cfg.seed * 1000 + i,
                download=download,
                check_integrity=check,
            )
    if not ood:
        raise UserError("no OOD test set given; pass --ood NAME or KIND:PATH (repeatable)")
    for key, images in ood.items():
        if len(images) == 0:
            raise UserError(f"OOD set '{key}' is empty; check its path")
    return Benchmark(
        name=name,
        train=train,
        test=test,
        pool=pool,
        ood=ood,
        num_classes=len(classes),
        flip=data.flip,
    )
