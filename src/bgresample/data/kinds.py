"""Dataset kinds behind ``--id KIND:PATH``, ``--background KIND:PATH``, ``--ood KIND[:PATH]``.

A kind names an on-disk format and the roles it can play. Without a PATH a kind is looked for at
its ``default_subpath`` under ``--data-root``; :func:`status` lists what is found there.

``textures`` is DTD through torchvision (its root, the folder holding ``dtd/``, is the data root
itself, as for CIFAR): all 5,640 images, the union of partition 1's train, val and test splits.
``places365`` is torchvision's Places365 (256 x 256 images) under ``places365/``: split ``val``
as OOD set, ``train-standard`` as background pool (``status`` looks for the val files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bgresample.data import datasets as ds
from bgresample.data import pools
from bgresample.data.base import ImageArray
from bgresample.data.embedded import noise_ood
from bgresample.errors import UserError

ROLES = ("id", "background", "ood")


@dataclass(frozen=True)
class Kind:
    """One dataset format: the roles it can play, its layout and where to get it.

    ``default_subpath`` is where it is looked for under a data root ("" is the root itself; None:
    no default, a PATH must be given); ``expected`` are the entries under that path that show it
    is present; ``needs_path`` is False for sets generated in memory.
    """

    name: str
    roles: tuple[str, ...]
    layout: str
    source: str
    default_subpath: str | None
    expected: tuple[str, ...] = ()
    needs_path: bool = True


#: The files torchvision's CIFAR10 / CIFAR100 / SVHN read (spelled out so that listing kinds does
#: not import torchvision; a test checks them against torchvision's class attributes).
EXPECTED_FILES = {
    "cifar10": tuple(
        f"cifar-10-batches-py/{f}"
        for f in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    ),
    "cifar100": tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
}


def _folder_kind(name: str, roles: tuple[str, ...], what: str, source: str, sub: str) -> Kind:
    return Kind(name, roles, f"{what}: {pools.FOLDER_LAYOUT}, read recursively", source, sub)


_ODIN = "the ODIN repository, https://github.com/facebookresearch/odin"

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "cifar10",
            ("id", "ood"),
            ds.CIFAR_LAYOUT["cifar10"],
            ds.CIFAR_SOURCE,
            "",
            EXPECTED_FILES["cifar10"],
        ),
        Kind(
            "cifar100",
            ("id", "ood"),
            ds.CIFAR_LAYOUT["cifar100"],
            ds.CIFAR_SOURCE,
            "",
            EXPECTED_FILES["cifar100"],
        ),
        Kind(
            "svhn",
            ("id", "ood"),
            ds.SVHN_LAYOUT,
            ds.SVHN_SOURCE,
            "svhn",
            EXPECTED_FILES["svhn"],
        ),
        Kind(
            "tiny-imagenet",
            ("id", "ood"),
            ds.TINY_IMAGENET_LAYOUT,
            ds.TINY_IMAGENET_SOURCE,
            "tiny-imagenet-200",
            ("wnids.txt", "train", "val/val_annotations.txt"),
        ),
        Kind("imagefolder", ("id",), ds.IMAGEFOLDER_LAYOUT, ds.IMAGEFOLDER_SOURCE, None),
        Kind("folder", ("background", "ood"), pools.FOLDER_LAYOUT, "any folder of images", None),
        Kind("npy", ("background", "ood"), pools.NPY_LAYOUT, "any such array", None),
        Kind(
            "random300k",
            ("background",),
            "300K_random_images.npy, N x 32 x 32 x 3 uint8",
            pools.RANDOM300K_SOURCE,
            "300K_random_images.npy",
        ),
        Kind(
            "tinyimages",
            ("background",),
            pools.TINYIMAGES_LAYOUT,
            pools.TINYIMAGES_SOURCE,
            "tiny_images.bin",
        ),
        Kind(
            "imagenet32",
            ("background",),
            pools.IMAGENET32_LAYOUT,
            pools.IMAGENET32_SOURCE,
            "Imagenet32_train",
            pools.IMAGENET32_BATCHES,
        ),
        Kind(
            "gaussian",
            ("ood",),
            "none: N(0, 0.5^2) noise in normalised space, clamped to [-1, 1]",
            "generated",
            None,
            needs_path=False,
        ),
        Kind(
            "uniform",
            ("ood",),
            "none: U[-1, 1] noise in normalised space",
            "generated",
            None,
            needs_path=False,
        ),
        Kind("textures", ("ood",), ds.DTD_LAYOUT, ds.DTD_SOURCE, "", ds.DTD_FILES),
        _folder_kind(
            "lsun", ("ood",), "LSUN (crop) test images", f"LSUN.tar.gz from {_ODIN}", "LSUN"
        ),
        _folder_kind(
            "lsun-resize",
            ("ood",),
            "LSUN (resize) test images",
            f"LSUN_resize.tar.gz from {_ODIN}",
            "LSUN_resize",
        ),
        _folder_kind("isun", ("ood",), "iSUN images", f"iSUN.tar.gz from {_ODIN}", "iSUN"),
        Kind(
            "places365",
            ("background", "ood"),
            ds.PLACES365_LAYOUT,
            ds.PLACES365_SOURCE,
            "places365",
            (ds.PLACES365_CATEGORIES, *ds.PLACES365_FILES["val"]),
        ),
    )
}


class StatusRow(NamedTuple):
    """One kind under a data root: ``path`` is None where the kind has no default location."""

    kind: str
    roles: tuple[str, ...]
    path: Path | None
    found: bool
    layout: str


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"KIND:PATH"`` -> ``(kind, path)``, ``"KIND"`` -> ``(kind, None)``; kind lower-cased."""
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if not kind or (sep and not path):
        raise UserError(f"bad dataset spec {spec!r}: expected KIND:PATH or KIND")
    return kind, path or None


def get_kind(name: str, role: str) -> Kind:
    """The kind called ``name``, checked to play ``role``."""
    kind = KINDS.get(name)
    if kind is None or role not in kind.roles:
        valid = ", ".join(k.name for k in KINDS.values() if role in k.roles)
        what = "unknown dataset kind" if kind is None else f"dataset kind cannot be {role} data:"
        raise UserError(f"{what} {name!r}; valid {role} kinds: {valid}")
    return kind


def resolve_path(
    kind: Kind, path: str | os.PathLike | None, data_root: str | os.PathLike | None
) -> Path | None:
    """``path``, else the kind's default location under ``data_root``; None for generated sets."""
    if not kind.needs_path:
        if path is not None:
            raise UserError(f"{kind.name} is generated and takes no PATH (got {str(path)!r})")
        return None
    if path is not None:
        return Path(path).expanduser()
    if kind.default_subpath is None or data_root is None:
        where = "" if kind.default_subpath is None else " or a --data-root"
        raise UserError(
            f"{kind.name}: give {kind.name}:PATH{where}. Expected layout: {kind.layout}. "
            f"Where to get it: {kind.source}."
        )
    return Path(data_root) / kind.default_subpath


def load_id(
    kind: str,
    path: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    check_integrity: bool = True,
) -> ds.Split:
    """``(train, test, classes)`` of an ID dataset kind."""
    k = get_kind(kind, "id")
    p = resolve_path(k, path, data_root)
    if k.name in ("cifar10", "cifar100"):
        return ds.load_cifar(p, k.name, download=download, check_integrity=check_integrity)
    if k.name == "svhn":
        return ds.load_svhn(p, download=download, check_integrity=check_integrity)
    if k.name == "tiny-imagenet":
        return ds.load_tiny_imagenet(p, download=download)
    return ds.ImageFolderID(p).load()


def _folder(k: Kind, p: Path) -> pools.FolderImages:
    return pools.FolderImages(p, name=k.name, layout=k.layout, origin=k.source)


def load_background(
    kind: str,
    path: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    exclude: str | os.PathLike | None = "auto",
    cache_dir: str | os.PathLike | None = None,
    allow_cifar_overlap: bool = False,
    download: bool = False,
    check_integrity: bool = True,
) -> pools.ImageSource:
    """A background pool; ``exclude`` and ``allow_cifar_overlap`` are for tinyimages (see
    :class:`bgresample.data.pools.TinyImages`), ``cache_dir`` for imagenet32, ``download`` and
    ``check_integrity`` for places365 (torchvision's split train-standard)."""
    k = get_kind(kind, "background")
    p = resolve_path(k, path, data_root)
    loaders: dict[str, Callable[[], pools.ImageSource]] = {
        "places365": lambda: ds.load_places365(
            p, "train-standard", download, check_integrity, name=k.name
        ),
        "tinyimages": lambda: pools.TinyImages(
            p, exclude=exclude, name=k.name, allow_cifar_overlap=allow_cifar_overlap
        ),
        "imagenet32": lambda: pools.Imagenet32(p, cache_dir=cache_dir, name=k.name),
        "random300k": lambda: pools.NpyImages(p, name=k.name, origin=k.source),
        "npy": lambda: pools.NpyImages(p, name=k.name, origin=k.source),
    }
    return loaders[k.name]() if k.name in loaders else _folder(k, p)


def load_ood(
    kind: str,
    path: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    n: int = 10_000,
    seed: int = 0,
    download: bool = False,
    check_integrity: bool = True,
) -> pools.ImageSource:
    """An OOD test set: the test split of an ID kind, DTD, Places365's val split, a folder or
    array of images, or ``n`` generated noise images (seeded by ``seed``)."""
    k = get_kind(kind, "ood")
    p = resolve_path(k, path, data_root)
    if p is None:
        return ImageArray(noise_ood(k.name, n, seed), name=k.name, normalized=True)
    if k.name in ("cifar10", "cifar100"):
        test = ds.load_cifar_split(p, k.name, False, download, check_integrity)
    elif k.name == "svhn":
        test = ds.load_svhn_split(p, "test", download, check_integrity)
    elif k.name == "tiny-imagenet":
        test = ds.TinyImageNet(p, "val", download=download).to_labeled()
    elif k.name == "textures":
        return ds.load_textures(p, download, name=k.name)
    elif k.name == "places365":
        return ds.load_places365(p, "val", download, check_integrity, name=k.name)
    elif k.name == "npy":
        return pools.NpyImages(p, name=k.name, origin=k.source)
    else:
        return _folder(k, p)
    return ImageArray(test.data, name=k.name)


def status(root: str | os.PathLike) -> list[StatusRow]:
    """Every kind, where it is looked for under ``root`` and whether it is there."""
    rows = []
    for k in KINDS.values():
        path = None if k.default_subpath is None else Path(root) / k.default_subpath
        found = not k.needs_path or (
            path is not None and path.exists() and all((path / e).exists() for e in k.expected)
        )
        rows.append(StatusRow(k.name, k.roles, path, found, k.layout))
    return rows
