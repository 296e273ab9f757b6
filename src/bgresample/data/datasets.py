"""Datasets on disk: the labelled in-distribution sets (CIFAR-10/100, SVHN, Tiny ImageNet, image
folders) and the image-file sets found through torchvision (DTD as Textures, Places365).

Each ID ``load_*`` returns ``(train, test, classes)`` with uint8 N x 3 x 32 x 32 images. CIFAR,
SVHN, DTD and Places365 come through torchvision's classes, which find the files (downloading
them with ``download=True``) and check CIFAR's, SVHN's and Places365's file lists' md5 sums;
``check_integrity=False`` skips that check and exists for tests with synthetic files only. DTD and
Places365 images are then decoded on demand by :class:`~bgresample.data.pools.FolderImages`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from bgresample.data.base import LabeledImages
from bgresample.data.images import SIZE, list_images, load_images, load_pil
from bgresample.data.pools import FolderImages, data_error
from bgresample.errors import UserError
from bgresample.optional import torchvision

TORCHVISION_SOURCE = "torchvision: add --download to fetch it"
CIFAR_LAYOUT = {
    "cifar10": "PATH/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
    "cifar100": "PATH/cifar-100-python/{train, test, meta}",
}
CIFAR_SOURCE = f"{TORCHVISION_SOURCE} (https://www.cs.toronto.edu/~kriz/cifar.html)"
SVHN_LAYOUT = "PATH/train_32x32.mat and PATH/test_32x32.mat"
SVHN_SOURCE = f"{TORCHVISION_SOURCE} (http://ufldl.stanford.edu/housenumbers/)"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_LAYOUT = (
    "PATH/tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG "
    "and val/val_annotations.txt"
)
TINY_IMAGENET_SOURCE = f"{TINY_IMAGENET_URL} (unzip it under PATH; not in torchvision)"
#: DTD: the files under torchvision's root that :func:`load_textures` reads (partition 1).
DTD_SPLITS = ("train", "val", "test")
DTD_FILES = ("dtd/dtd/images", *(f"dtd/dtd/labels/{s}1.txt" for s in DTD_SPLITS))
DTD_LAYOUT = (
    "ROOT/dtd/dtd/images/<category>/*.jpg and ROOT/dtd/dtd/labels/{train,val,test}1.txt "
    "(lines <category>/<file>.jpg), as torchvision's DTD extracts it; PATH is ROOT, ROOT/dtd, "
    "ROOT/dtd/dtd or ROOT/dtd/dtd/images (another images/ folder is read as a folder of images)"
)
DTD_SOURCE = f"{TORCHVISION_SOURCE} (https://www.robots.ox.ac.uk/~vgg/data/dtd/)"
#: Places365 (torchvision, small=True): the category list, and per split its file list and
#: image folder; a PATH naming an image folder selects its split.
PLACES365_CATEGORIES = "categories_places365.txt"
PLACES365_FILES = {
    "val": ("places365_val.txt", "val_256"),
    "train-standard": ("places365_train_standard.txt", "data_256_standard"),
}
PLACES365_LAYOUT = (
    "PATH/categories_places365.txt (lines /a/airfield 0) with, for OOD (split val), "
    "PATH/places365_val.txt (lines Places365_val_00000001.jpg 165) and PATH/val_256/*.jpg; for "
    "background (split train-standard), PATH/places365_train_standard.txt and "
    "PATH/data_256_standard/<letter>/<category>/*.jpg: torchvision's Places365 with small=True "
    "(PATH/val_256 or PATH/data_256_standard selects that split; without the lists beside it, "
    "it is read as a folder of images)"
)
PLACES365_SOURCE = f"{TORCHVISION_SOURCE} (http://places2.csail.mit.edu/download.html)"
IMAGEFOLDER_LAYOUT = "PATH/train/<class>/<images> and PATH/test/<class>/<images> (or PATH/val/)"
IMAGEFOLDER_SOURCE = "your own images, one folder per class"

Split = tuple[LabeledImages, LabeledImages, list[str]]


def _labeled(data: np.ndarray, targets: Any, channels_last: bool) -> LabeledImages:
    x = torch.from_numpy(np.ascontiguousarray(data))
    if channels_last:
        x = x.permute(0, 3, 1, 2).contiguous()
    return LabeledImages(x, torch.as_tensor(np.asarray(targets), dtype=torch.int64))


def _tv_datasets(dataset: str) -> Any:
    return torchvision(f"{dataset} (loaded through torchvision.datasets)", "datasets")


def _without_md5(cls: type) -> type:
    """``cls`` (a torchvision dataset) with its md5 checks turned off: for synthetic test files."""
    if "split_list" in vars(cls):  # SVHN
        fields = {"split_list": {k: [u, f, None] for k, (u, f, _) in cls.split_list.items()}}
    elif "_FILE_LIST_META" in vars(cls):  # Places365
        fields = {
            "_CATEGORIES_META": (cls._CATEGORIES_META[0], None),
            "_FILE_LIST_META": {k: (f, None) for k, (f, _) in cls._FILE_LIST_META.items()},
        }
    else:
        fields = {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        }
    return type(cls.__name__, (cls,), fields)


def _torchvision(
    cls: type,
    *,
    dataset: str,
    folder: Path,
    files: list[str],
    layout: str,
    source: str,
    check_integrity: bool,
    **kwargs: Any,
) -> Any:
    """``cls(**kwargs)``, its failures (files missing, corrupted or malformed, download failed)
    turned into one UserError; ``files`` are those it reads, relative to ``folder``."""
    try:
        return (cls if check_integrity else _without_md5(cls))(**kwargs)
    except (RuntimeError, OSError, ValueError) as e:
        missing = [f for f in files if not (folder / f).exists()]
        if kwargs.get("download") and (missing or isinstance(e, OSError)):
            problem = f"download failed ({e})"
        elif missing:
            problem = f"missing {', '.join(missing)}"
        else:
            what = {RuntimeError: "corrupted", ValueError: "malformed"}.get(type(e), "unreadable")
            problem = f"{what} files ({e})"
        raise data_error(dataset, folder, problem, layout, source) from e


def _cifar(
    root: str | os.PathLike, name: str, train: bool, download: bool, check_integrity: bool
) -> Any:
    tv = _tv_datasets(name)
    cls = {"cifar10": tv.CIFAR10, "cifar100": tv.CIFAR100}[name]
    root = Path(root)
    if root.name == cls.base_folder:
        root = root.parent
    return _torchvision(
        cls,
        dataset=name,
        folder=root / cls.base_folder,
        files=[f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]],
        layout=CIFAR_LAYOUT[name],
        source=CIFAR_SOURCE,
        check_integrity=check_integrity,
        root=root,
        train=train,
        download=download,
    )


def load_cifar_split(
    root: str | os.PathLike,
    name: str = "cifar10",
    train: bool = False,
    download: bool = False,
    check_integrity: bool = True,
) -> LabeledImages:
    """One split of CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``); ``root`` holds
    ``cifar-10-batches-py`` / ``cifar-100-python`` (or is that folder)."""
    ds = _cifar(root, name, train, download, check_integrity)
    return _labeled(ds.data, ds.targets, channels_last=True)


def load_cifar(
    root: str | os.PathLike,
    name: str = "cifar10",
    download: bool = False,
    check_integrity: bool = True,
) -> Split:
    """CIFAR-10 or CIFAR-100 train and test splits and class names (see load_cifar_split)."""
    train = _cifar(root, name, True, download, check_integrity)
    test = _cifar(root, name, False, False, check_integrity)
    return (
        _labeled(train.data, train.targets, channels_last=True),
        _labeled(test.data, test.targets, channels_last=True),
        list(train.classes),
    )


def load_svhn_split(
    root: str | os.PathLike, split: str, download: bool = False, check_integrity: bool = True
) -> LabeledImages:
    """One SVHN split (``train``, ``test`` or ``extra``); digit 0 has label 0."""
    root = Path(root)
    svhn = _tv_datasets("svhn").SVHN
    ds = _torchvision(
        svhn,
        dataset="svhn",
        folder=root,
        files=[svhn.split_list[split][1]],
        layout=SVHN_LAYOUT,
        source=SVHN_SOURCE,
        check_integrity=check_integrity,
        root=root,
        split=split,
        download=download,
    )
    return _labeled(ds.data, ds.labels, channels_last=False)


def load_svhn(
    root: str | os.PathLike, download: bool = False, check_integrity: bool = True
) -> Split:
    """SVHN train and test splits from ``root`` (the folder holding the .mat files)."""
    train = load_svhn_split(root, "train", download, check_integrity)
    test = load_svhn_split(root, "test", download, check_integrity)
    return train, test, [str(d) for d in range(10)]


def _dtd_root(path: Path) -> Path | None:
    """The torchvision root (the folder holding ``dtd/dtd/``) that ``path`` is, or whose
    ``dtd/``, ``dtd/dtd/`` or ``dtd/dtd/images/`` it is; None where there is none."""
    for root in (path, *path.parents[:3]):
        data = root / "dtd" / "dtd"
        if path in (root, root / "dtd", data, data / "images") and data.is_dir():
            return root
    return None


def load_textures(
    path: str | os.PathLike, download: bool = False, name: str = "textures"
) -> FolderImages:
    """DTD as the Textures OOD set: the whole dataset (5,640 images), i.e. the union of
    partition 1's train, val and test splits, in sorted path order.

    torchvision's DTD finds the files (and downloads them under ``path`` with ``download``);
    ``path`` is its root or a folder in it (:data:`DTD_LAYOUT`). An ``images/`` folder outside
    that layout is read as a plain folder of images, as the folder kind did.
    """
    path = Path(path)
    root = _dtd_root(path)
    if root is None and path.name == "images" and path.is_dir() and not download:
        return FolderImages(path, name=name, layout=DTD_LAYOUT, origin=DTD_SOURCE)
    root = path if root is None else root
    dtd = _tv_datasets(name).DTD
    files: set[Path] = set()
    for split in DTD_SPLITS:
        found = _torchvision(
            dtd,
            dataset=name,
            folder=root,
            files=list(DTD_FILES),
            layout=DTD_LAYOUT,
            source=DTD_SOURCE,
            check_integrity=True,  # nothing to skip: DTD checks only its archive's md5
            root=root,
            split=split,
            partition=1,
            download=download,
            loader=Path,  # items are (path, label): the files are decoded by FolderImages
        )
        files.update(found[i][0] for i in range(len(found)))
    return FolderImages(
        root / DTD_FILES[0], name=name, layout=DTD_LAYOUT, origin=DTD_SOURCE, files=sorted(files)
    )


def load_places365(
    path: str | os.PathLike,
    split: str = "val",
    download: bool = False,
    check_integrity: bool = True,
    name: str = "places365",
) -> FolderImages:
    """Places365's ``split`` ("val", 36,500 images: the OOD set; "train-standard", 1,803,460:
    the background pool) of 256 x 256 images, in the file list's order; ``family`` is the
    category (``airfield`` for ``/a/airfield``).

    torchvision's Places365 (small=True) reads and md5-checks the category and file lists (and
    downloads them and the images into ``path`` with ``download``). A ``path`` naming a split's
    image folder (``val_256``, ``data_256_standard``) selects that split, its parent being the
    root; without the lists beside it, it is read as a plain folder of images.
    """
    path = root = Path(path)
    folders = {folder: s for s, (_, folder) in PLACES365_FILES.items()}
    if path.name in folders:
        if path.is_dir() and not download and not (path.parent / PLACES365_CATEGORIES).is_file():
            return FolderImages(path, name=name, layout=PLACES365_LAYOUT, origin=PLACES365_SOURCE)
        root, split = path.parent, folders[path.name]
    file_list, folder = PLACES365_FILES[split]
    found = _torchvision(
        _tv_datasets(name).Places365,
        dataset=name,
        folder=root,
        files=[PLACES365_CATEGORIES, file_list, folder],
        layout=PLACES365_LAYOUT,
        source=PLACES365_SOURCE,
        check_integrity=check_integrity,
        root=root,
        split=split,
        small=True,
        download=download,
    )
    if not (root / folder).is_dir():
        raise data_error(name, root, f"missing {folder}/", PLACES365_LAYOUT, PLACES365_SOURCE)
    category = {i: c.strip("/").split("/", 1)[-1] for c, i in found.class_to_idx.items()}
    return FolderImages(
        root / folder,
        name=name,
        layout=PLACES365_LAYOUT,
        origin=PLACES365_SOURCE,
        files=[f for f, _ in found.imgs],
        family=[category.get(t, "") for t in found.targets],
    )


def _decode(paths: list[Path], targets: list[int], dataset: str, layout: str) -> LabeledImages:
    try:
        data = load_images(paths)
    except OSError as e:
        raise UserError(f"{dataset}: {e}. Expected layout: {layout}") from e
    return LabeledImages(data, torch.tensor(targets, dtype=torch.int64))


class TinyImageNet(Dataset):
    """Tiny ImageNet 200 (``split="train"`` or ``"val"``), images resized 64 -> ``size``.

    ``root`` is the ``tiny-imagenet-200`` folder or its parent. Labels index the sorted wnids (the
    ImageFolder order of ``train/``). ``__getitem__`` gives ``(PIL image, label)`` through
    ``transform`` / ``target_transform``; :meth:`to_labeled` decodes the whole split.
    """

    base_folder = "tiny-imagenet-200"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
        size: int = SIZE,
    ) -> None:
        root = Path(root)
        self.root = root if (root / "wnids.txt").is_file() else root / self.base_folder
        if download:
            raise UserError(
                f"tiny-imagenet: cannot download it (not in torchvision); fetch {TINY_IMAGENET_URL}"
                f" and unzip it under {root}"
            )
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.split, self.size = split, size
        self.transform, self.target_transform = transform, target_transform
        wnids_file = self.root / "wnids.txt"
        if not wnids_file.is_file():
            self._fail("missing wnids.txt")
        self.classes = sorted({w.strip() for w in wnids_file.read_text().split() if w.strip()})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = self._train_samples() if split == "train" else self._val_samples()
        self.targets = [y for _, y in self.samples]

    def _fail(self, problem: str) -> NoReturn:
        raise data_error(
            "tiny-imagenet", self.root, problem, TINY_IMAGENET_LAYOUT, TINY_IMAGENET_SOURCE
        )

    def _train_samples(self) -> list[tuple[Path, int]]:
        samples = []
        for c in self.classes:
            paths = list_images(self.root / "train" / c / "images")
            if not paths:
                self._fail(f"no images in train/{c}/images")
            samples += [(p, self.class_to_idx[c]) for p in paths]
        return samples

    def _val_samples(self) -> list[tuple[Path, int]]:
        ann = self.root / "val" / "val_annotations.txt"
        if not ann.is_file():
            self._fail("missing val/val_annotations.txt")
        samples = []
        for line_no, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in self.class_to_idx:
                self._fail(f"val_annotations.txt line {line_no} names no wnid of wnids.txt")
            path = self.root / "val" / "images" / fields[0]
            if not path.is_file():
                self._fail(f"missing val/images/{fields[0]}")
            samples.append((path, self.class_to_idx[fields[1]]))
        if not samples:
            self._fail("val_annotations.txt is empty")
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        img: Any = load_pil(path, self.size)
        if self.transform is not None:
            img = self.transform(img)
        return img, target if self.target_transform is None else self.target_transform(target)

    def to_labeled(self) -> LabeledImages:
        """The whole split, decoded at ``size`` (transforms not applied)."""
        return _decode(
            [p for p, _ in self.samples], self.targets, "tiny-imagenet", TINY_IMAGENET_LAYOUT
        )


def load_tiny_imagenet(root: str | os.PathLike, download: bool = False) -> Split:
    """Tiny ImageNet train and val (as the test split) at 32 x 32."""
    train = TinyImageNet(root, "train", download=download)
    test = TinyImageNet(root, "val")
    return train.to_labeled(), test.to_labeled(), train.classes


class ImageFolderID:
    """A labelled dataset laid out as ``root/train/<class>/*`` and ``root/test/<class>/*``
    (``val`` accepted for ``test``); labels index the sorted class folder names."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            self._fail("folder not found")
        test_dir = self.root / "test"
        if not test_dir.is_dir():
            test_dir = self.root / "val"
        dirs = {"train": self.root / "train", "test": test_dir}
        found = {}
        for split, d in dirs.items():
            if not d.is_dir():
                self._fail(f"no {'test/ or val/' if split == 'test' else 'train/'} folder")
            found[split] = sorted(e.name for e in os.scandir(d) if e.is_dir())
        if not found["train"]:
            self._fail("no class folders in train/")
        if found["train"] != found["test"]:
            only_train = sorted(set(found["train"]) - set(found["test"]))
            only_test = sorted(set(found["test"]) - set(found["train"]))
            self._fail(
                f"the splits have different classes (only in train: {only_train}; only in "
                f"{dirs['test'].name}: {only_test})"
            )
        self.classes: list[str] = found["train"]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = {
            split: [(p, i) for i, c in enumerate(self.classes) for p in list_images(d / c)]
            for split, d in dirs.items()
        }
        counts = Counter(y for _, y in self.samples["train"])
        empty = [c for i, c in enumerate(self.classes) if not counts[i]]
        if empty:
            self._fail(f"no images in train/{empty[0]}")
        if not self.samples["test"]:
            self._fail(f"no images in {dirs['test'].name}/")

    def _fail(self, problem: str) -> NoReturn:
        raise data_error("imagefolder", self.root, problem, IMAGEFOLDER_LAYOUT, IMAGEFOLDER_SOURCE)

    def split(self, split: str) -> LabeledImages:
        """The ``train`` or ``test`` split, decoded."""
        samples = self.samples[split]
        return _decode(
            [p for p, _ in samples], [y for _, y in samples], "imagefolder", IMAGEFOLDER_LAYOUT
        )

    def load(self) -> Split:
        """``(train, test, classes)``."""
        return self.split("train"), self.split("test"), self.classes
