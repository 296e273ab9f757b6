"""Dataset kinds behind ``--id KIND:PATH``, ``--background KIND:PATH``, ``--ood KIND[:PATH]``.

A kind names an on-disk format and the roles it can play. Without a PATH a kind is looked for at
its ``default_subpath`` under ``--data-root``; :func:`status` lists what is found there.

``textures`` is DTD through torchvision (its root, the folder holding ``dtd/``, is the data root
itself, as for CIFAR): all 5,640 images, the union of partition 1's train, val and test splits.
``places365`` is torchvision's Places365 (256 x 256 images) under ``places365/``: split ``val``
as OOD set, ``train-standard`` as background pool (``status`` looks for the val files).
``lsun`` is LSUN's test split as the paper's authors load it (torchvision's LSUN layout, the LMDB
database ``lsun/test_lmdb``; :mod:`bgresample.data.lsun`); ``lsun-crop`` and ``lsun-resize`` are
ODIN's LSUN (crop) and LSUN (resize) folders of 32 x 32 images, other sets.
``mnist`` is MNIST in torchvision's layout (``PATH/MNIST/raw/``, :mod:`bgresample.data.mnist_idx`),
padded to 32 x 32.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bgresample.data import datasets as ds
from bgresample.data import lsun, mnist_idx, pools
from bgresample.data.base import ImageArray
from bgresample.data.embedded import noise_ood
from bgresample.errors import UserError

ROLES = ("id", "background", "ood")


@dataclass(frozen=True)
class LoadOptions:
    """What loading a kind may need besides its path: ``download`` and ``check_integrity``
    (torchvision kinds), ``exclude`` and ``allow_cifar_overlap`` (tinyimages), ``cache_dir``
    (imagenet32), ``n`` and ``seed`` (generated sets)."""

    download: bool = False
    check_integrity: bool = True
    exclude: str | os.PathLike | None = "auto"
    allow_cifar_overlap: bool = False
    cache_dir: str | os.PathLike | None = None
    n: int = 10_000
    seed: int = 0


#: ``load(role, path, options)``: a :class:`~bgresample.data.datasets.Split` for ``id``, an
#: image source for ``background`` and ``ood``.
Loader = Callable[[str, Any, LoadOptions], Any]
#: ``count(role, path, options)``: what ``bgresample plan`` needs to know, without decoding the
#: images: for ``id`` (training labels, test size, classes), else the number of items; None
#: where counting would cost a conversion the run does anyway.
Counter = Callable[[str, Any, LoadOptions], Any]


@dataclass(frozen=True)
class Kind:
    """One dataset format, declared in one place: the roles it can play, its layout and where
    to get it, how to load it, and its nominal sizes.

    ``default_subpath`` is where it is looked for under a data root ("" is the root itself; None:
    no default, a PATH must be given); ``expected`` are the entries under that path that show it
    is present; ``needs_path`` is False for sets generated in memory. ``nominal`` holds the
    standard sizes ``bgresample plan`` assumes where the data is missing, per role: ``id``:
    (train, test, classes), ``background`` / ``ood``: items; ``count`` sizes the data that is
    there without decoding it (default: :func:`count_by_loading`). ``decodes``: its images are
    decoded from files (by ``data.workers`` processes). ``mirror``: a horizontal flip keeps its
    images' labels (False for digits), what ``data.flip: auto`` follows as ID data.
    """

    name: str
    roles: tuple[str, ...]
    layout: str
    source: str
    default_subpath: str | None
    load: Loader
    expected: tuple[str, ...] = ()
    needs_path: bool = True
    nominal: dict[str, Any] = field(default_factory=dict)
    decodes: bool = False
    count: Counter | None = None
    mirror: bool = True

    def size(self, role: str, path: Any, options: LoadOptions) -> Any:
        """What :data:`Counter` gives for the data at ``path`` in ``role``."""
        return (self.count or count_by_loading(self))(role, path, options)


def count_by_loading(kind: Kind) -> Counter:
    """A kind's :data:`Counter` that loads the data (cheap for arrays and memory maps)."""

    def count(role: str, path: Any, options: LoadOptions) -> Any:
        data = kind.load(role, path, options)
        if role == "id":
            train, test, classes = data
            return train.targets.tolist(), len(test), len(classes)
        return len(data)

    return count


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add ``kind`` to :data:`KINDS` (where ``--id`` / ``--background`` / ``--ood`` KIND,
    ``bgresample datasets`` and ``plan`` find it); ValueError for a taken name or an unknown
    role."""
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"dataset kind {kind.name!r} is registered already")
    if not kind.roles or not set(kind.roles) <= set(ROLES):
        raise ValueError(f"dataset kind {kind.name!r}: roles must be among {', '.join(ROLES)}")
    unknown = set(kind.nominal) - set(kind.roles)
    if unknown:
        raise ValueError(f"dataset kind {kind.name!r}: nominal sizes for roles it cannot play")
    KINDS[kind.name] = kind
    return kind


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

_ODIN = "the ODIN repository, https://github.com/facebookresearch/odin"


def _cifar(role: str, p: Path, o: LoadOptions, name: str) -> Any:
    if role == "id":
        return ds.load_cifar(p, name, download=o.download, check_integrity=o.check_integrity)
    test = ds.load_cifar_split(p, name, False, o.download, o.check_integrity)
    return ImageArray(test.data, name=name)


def _cifar_kind(name: str, classes: int) -> Kind:
    return Kind(
        name,
        ("id", "ood"),
        ds.CIFAR_LAYOUT[name],
        ds.CIFAR_SOURCE,
        "",
        lambda role, p, o: _cifar(role, p, o, name),
        EXPECTED_FILES[name],
        nominal={"id": (50_000, 10_000, classes), "ood": 10_000},
    )


def _svhn(role: str, p: Path, o: LoadOptions) -> Any:
    if role == "id":
        return ds.load_svhn(p, download=o.download, check_integrity=o.check_integrity)
    test = ds.load_svhn_split(p, "test", o.download, o.check_integrity)
    return ImageArray(test.data, name="svhn")


def _count_tiny_imagenet(role: str, p: Path, o: LoadOptions) -> Any:
    """From the file lists, without decoding images."""
    test = ds.TinyImageNet(p, "val")
    if role != "id":
        return len(test)
    train = ds.TinyImageNet(p, "train")
    return list(train.targets), len(test), len(train.classes)


def _count_imagefolder(role: str, p: Path, o: LoadOptions) -> Any:
    folder = ds.ImageFolderID(p)
    train = [y for _, y in folder.samples["train"]]
    return train, len(folder.samples["test"]), len(folder.classes)


def _count_imagenet32(role: str, p: Path, o: LoadOptions) -> int | None:
    """From the cache's labels; None before the cache exists (reading the batches would
    convert them: left to the run)."""
    cache = Path(o.cache_dir) if o.cache_dir is not None else p
    if not (cache / pools.IMAGENET32_CACHE).is_file():
        return None
    return len(np.load(cache / pools.IMAGENET32_LABELS, mmap_mode="r"))


def _tiny_imagenet(role: str, p: Path, o: LoadOptions) -> Any:
    if role == "id":
        return ds.load_tiny_imagenet(p, download=o.download)
    test = ds.TinyImageNet(p, "val", download=o.download).to_labeled()
    return ImageArray(test.data, name="tiny-imagenet")


def _folder(name: str, layout: str, origin: str) -> Loader:
    return lambda role, p, o: pools.FolderImages(p, name=name, layout=layout, origin=origin)


def _npy(name: str, origin: str) -> Loader:
    return lambda role, p, o: pools.NpyImages(p, name=name, origin=origin)


def _noise(name: str) -> Loader:
    return lambda role, p, o: ImageArray(noise_ood(name, o.n, o.seed), name=name, normalized=True)


def _places365(role: str, p: Path, o: LoadOptions) -> Any:
    split = "train-standard" if role == "background" else "val"
    return ds.load_places365(p, split, o.download, o.check_integrity, name="places365")


def _folder_kind(name: str, what: str, source: str, sub: str, items: int) -> Kind:
    layout = f"{what}: {pools.FOLDER_LAYOUT}, read recursively"
    return Kind(
        name,
        ("ood",),
        layout,
        source,
        sub,
        _folder(name, layout, source),
        nominal={"ood": items},
        decodes=True,
    )


for _kind in (
    _cifar_kind("cifar10", 10),
    _cifar_kind("cifar100", 100),
    Kind(
        "svhn",
        ("id", "ood"),
        ds.SVHN_LAYOUT,
        ds.SVHN_SOURCE,
        "svhn",
        _svhn,
        EXPECTED_FILES["svhn"],
        nominal={"id": (73_257, 26_032, 10), "ood": 26_032},
        mirror=False,  # digits: the authors turn the flip off for SVHN and MNIST
    ),
    Kind(
        "tiny-imagenet",
        ("id", "ood"),
        ds.TINY_IMAGENET_LAYOUT,
        ds.TINY_IMAGENET_SOURCE,
        "tiny-imagenet-200",
        _tiny_imagenet,
        ("wnids.txt", "train", "val/val_annotations.txt"),
        nominal={"id": (100_000, 10_000, 200), "ood": 10_000},
        count=_count_tiny_imagenet,
    ),
    Kind(
        "imagefolder",
        ("id",),
        ds.IMAGEFOLDER_LAYOUT,
        ds.IMAGEFOLDER_SOURCE,
        None,
        lambda role, p, o: ds.ImageFolderID(p).load(),
        count=_count_imagefolder,
        decodes=True,
    ),
    Kind(
        "folder",
        ("background", "ood"),
        pools.FOLDER_LAYOUT,
        "any folder of images",
        None,
        _folder("folder", pools.FOLDER_LAYOUT, "any folder of images"),
        decodes=True,
    ),
    Kind(
        "npy",
        ("background", "ood"),
        pools.NPY_LAYOUT,
        "any such array",
        None,
        _npy("npy", "any such array"),
    ),
    Kind(
        "random300k",
        ("background",),
        "300K_random_images.npy, N x 32 x 32 x 3 uint8",
        pools.RANDOM300K_SOURCE,
        "300K_random_images.npy",
        _npy("random300k", pools.RANDOM300K_SOURCE),
        nominal={"background": 300_000},
    ),
    Kind(
        "tinyimages",
        ("background",),
        pools.TINYIMAGES_LAYOUT,
        pools.TINYIMAGES_SOURCE,
        "tiny_images.bin",
        lambda role, p, o: pools.TinyImages(
            p, exclude=o.exclude, name="tinyimages", allow_cifar_overlap=o.allow_cifar_overlap
        ),
        # before the 80mn_cifar_idxs.txt exclusions
        nominal={"background": pools.TINYIMAGES_RECORDS},
    ),
    Kind(
        "imagenet32",
        ("background",),
        pools.IMAGENET32_LAYOUT,
        pools.IMAGENET32_SOURCE,
        "Imagenet32_train",
        lambda role, p, o: pools.Imagenet32(p, cache_dir=o.cache_dir, name="imagenet32"),
        pools.IMAGENET32_BATCHES,
        nominal={"background": 1_281_167},
        count=_count_imagenet32,
    ),
    Kind(
        "gaussian",
        ("ood",),
        "none: N(0, 0.5^2) noise in normalised space, clamped to [-1, 1]",
        "generated",
        None,
        _noise("gaussian"),
        needs_path=False,
    ),
    Kind(
        "uniform",
        ("ood",),
        "none: U[-1, 1] noise in normalised space",
        "generated",
        None,
        _noise("uniform"),
        needs_path=False,
    ),
    Kind(
        "textures",
        ("ood",),
        ds.DTD_LAYOUT,
        ds.DTD_SOURCE,
        "",
        lambda role, p, o: ds.load_textures(p, o.download, name="textures"),
        ds.DTD_FILES,
        nominal={"ood": 5_640},
        decodes=True,
    ),
    Kind(
        "lsun",
        ("ood",),
        lsun.LSUN_LAYOUT,
        lsun.LSUN_SOURCE,
        "lsun",
        lambda role, p, o: lsun.LsunImages(p, name="lsun"),
        lsun.LSUN_FILES,
        nominal={"ood": lsun.LSUN_ITEMS},
        decodes=True,
    ),
    _folder_kind(
        "lsun-crop", "LSUN (crop) test images", f"LSUN.tar.gz from {_ODIN}", "LSUN", 10_000
    ),
    _folder_kind(
        "lsun-resize",
        "LSUN (resize) test images",
        f"LSUN_resize.tar.gz from {_ODIN}",
        "LSUN_resize",
        10_000,
    ),
    _folder_kind("isun", "iSUN images", f"iSUN.tar.gz from {_ODIN}", "iSUN", 8_925),
    Kind(
        "places365",
        ("background", "ood"),
        ds.PLACES365_LAYOUT,
        ds.PLACES365_SOURCE,
        "places365",
        _places365,
        (ds.PLACES365_CATEGORIES, *ds.PLACES365_FILES["val"]),
        # torchvision's split train-standard as the pool, val as the OOD set
        nominal={"background": 1_803_460, "ood": 36_500},
        decodes=True,
    ),
):
    register_kind(_kind)


def _mnist(role: str, p: Path, o: LoadOptions) -> Any:
    if role == "id":
        return mnist_idx.load_mnist(p, download=o.download)
    if o.download:
        mnist_idx.load_mnist(p, download=True)
    return ImageArray(mnist_idx.load_mnist_split(p, "test").data, name="mnist")


register_kind(
    Kind(
        "mnist",
        ("id", "ood"),
        mnist_idx.MNIST_LAYOUT,
        mnist_idx.MNIST_SOURCE,
        "",  # torchvision's root, as for CIFAR: PATH/MNIST/raw/
        _mnist,
        mnist_idx.MNIST_EXPECTED,
        nominal={"id": (60_000, 10_000, 10), "ood": 10_000},
        mirror=False,  # digits: no flips
    )
)


class StatusRow(NamedTuple):
    """One kind under a data root: ``path`` is None where the kind has no default location;
    ``state`` is ``found`` or ``missing`` there, ``user-supplied`` for a kind without a default
    location (your own data, given as KIND:PATH) or ``generated`` for a set made in memory."""

    kind: str
    roles: tuple[str, ...]
    path: Path | None
    found: bool
    layout: str
    source: str
    state: str


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"KIND:PATH"`` -> ``(kind, path)``, ``"KIND"`` -> ``(kind, None)``; kind lower-cased."""
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if not kind or (sep and not path):
        raise UserError(f"bad dataset spec {spec!r}: expected KIND:PATH or KIND")
    if not sep and (any(c in kind for c in "/\\~") or kind.endswith((".npy", ".npz"))):
        guess = "npy" if kind.endswith((".npy", ".npz")) else "folder"
        raise UserError(
            f"bad dataset spec {spec!r}: a path needs its dataset kind in front, KIND:PATH "
            f"(e.g. {guess}:{spec.strip()}; `bgresample datasets` lists the kinds)"
        )
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


def load(
    kind: str,
    role: str,
    path: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    options: LoadOptions | None = None,
) -> Any:
    """Dataset kind ``kind`` in ``role`` (``id``: a ``(train, test, classes)`` split; else an
    image source) from ``path``, else the kind's default location under ``data_root``."""
    k = get_kind(kind, role)
    return k.load(role, resolve_path(k, path, data_root), options or LoadOptions())


def load_id(
    kind: str,
    path: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    check_integrity: bool = True,
) -> ds.Split:
    """``(train, test, classes)`` of an ID dataset kind."""
    opts = LoadOptions(download=download, check_integrity=check_integrity)
    return load(kind, "id", path, data_root=data_root, options=opts)


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
    opts = LoadOptions(
        download=download,
        check_integrity=check_integrity,
        exclude=exclude,
        allow_cifar_overlap=allow_cifar_overlap,
        cache_dir=cache_dir,
    )
    return load(kind, "background", path, data_root=data_root, options=opts)


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
    opts = LoadOptions(download=download, check_integrity=check_integrity, n=n, seed=seed)
    return load(kind, "ood", path, data_root=data_root, options=opts)


def status(root: str | os.PathLike) -> list[StatusRow]:
    """Every kind, where it is looked for under ``root`` and whether it is there."""
    rows = []
    for k in KINDS.values():
        path = None if k.default_subpath is None else Path(root) / k.default_subpath
        found = not k.needs_path or (
            path is not None and path.exists() and all((path / e).exists() for e in k.expected)
        )
        if not k.needs_path:
            state = "generated"
        elif path is None:
            state = "user-supplied"
        else:
            state = "found" if found else "missing"
        rows.append(StatusRow(k.name, k.roles, path, found, k.layout, k.source, state))
    return rows
