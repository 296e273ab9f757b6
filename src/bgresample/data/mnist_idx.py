"""MNIST in torchvision's on-disk layout (the ``mnist`` dataset kind), read with an own IDX
reader: torchvision is needed only to download it.

``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (each possibly ``.gz``), as
``torchvision.datasets.MNIST(ROOT, download=True)`` leaves them; PATH may also name ``MNIST/``
or ``MNIST/raw/`` itself. The 28 x 28 digits are padded with 2 black pixels a side to 32 x 32
(as LeNet-5 fed them) and replicated to 3 channels, as the MNIST benchmark stores them
(:mod:`bgresample.data.mnist_bench`).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from bgresample.data.base import LabeledImages
from bgresample.data.datasets import _tv_datasets
from bgresample.data.pools import data_error

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_EXPECTED_NAMES = tuple(f for pair in MNIST_FILES.values() for f in pair)
#: Where :func:`bgresample.data.kinds.status` looks (what torchvision's download leaves).
MNIST_EXPECTED = tuple(f"MNIST/raw/{f}" for f in MNIST_EXPECTED_NAMES)
MNIST_LAYOUT = (
    "PATH/MNIST/raw/{train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte (each "
    "optionally .gz), as torchvision's MNIST lays it out"
)
MNIST_SOURCE = (
    "torchvision: add --download to fetch it (http://yann.lecun.com/exdb/mnist/, mirrored by "
    "torchvision)"
)
#: Most bytes an IDX file may decompress to (MNIST's training images are 47 MB).
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` read through gzip); ValueError when it is not
    one: magic ``00 00 08 ndim``, ndim big-endian uint32 sizes, then exactly their product of
    bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read(MAX_IDX_BYTES + 1)
    if len(data) > MAX_IDX_BYTES:
        raise ValueError(f"larger than {MAX_IDX_BYTES:,} bytes")
    if len(data) < 4 or data[0] or data[1] or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise ValueError("not an IDX file of unsigned bytes (magic 00 00 08 0N)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError("the header is cut short")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(shape)):
        raise ValueError(f"{len(data) - header:,} bytes of data for the shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def mnist_raw_dir(path: str | os.PathLike) -> Path:
    """The ``raw`` folder for a PATH that is the root, ``MNIST/`` or ``MNIST/raw/``."""
    path = Path(path)
    if path.name == "raw":
        return path
    if path.name == "MNIST":
        return path / "raw"
    return path / "MNIST" / "raw"


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist_split(path: str | os.PathLike, split: str, name: str = "mnist") -> LabeledImages:
    """MNIST's ``train`` or ``test`` split: uint8 N x 3 x 32 x 32 and int64 labels."""
    raw = mnist_raw_dir(path)
    found = [_find(raw, f) for f in MNIST_FILES[split]]
    if None in found:
        absent = [f for f, p in zip(MNIST_FILES[split], found, strict=True) if p is None]
        raise data_error(name, raw, f"missing {', '.join(absent)}", MNIST_LAYOUT, MNIST_SOURCE)
    images_path, labels_path = found
    try:
        images, labels = read_idx(images_path), read_idx(labels_path)
    except (OSError, EOFError, ValueError) as e:
        raise data_error(name, raw, f"unreadable IDX file ({e})", MNIST_LAYOUT, MNIST_SOURCE) from e
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
        raise data_error(
            name,
            raw,
            f"images of shape {images.shape} and labels of shape {labels.shape} (expected "
            "N x 28 x 28 and N)",
            MNIST_LAYOUT,
            MNIST_SOURCE,
        )
    if labels.size and labels.max() > 9:
        raise data_error(name, raw, "labels outside 0-9", MNIST_LAYOUT, MNIST_SOURCE)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    x = torch.from_numpy(padded)[:, None].repeat(1, 3, 1, 1)
    return LabeledImages(x, torch.from_numpy(labels.astype(np.int64)))


def download_mnist(path: str | os.PathLike) -> None:
    """Fetch MNIST into ``PATH/MNIST/raw`` with torchvision (which checks the files' md5)."""
    root = Path(path)
    if root.name == "raw":
        root = root.parent.parent
    elif root.name == "MNIST":
        root = root.parent
    mnist = _tv_datasets("mnist").MNIST
    try:
        for train in (True, False):
            mnist(str(root), train=train, download=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise data_error("mnist", root, f"download failed ({e})", MNIST_LAYOUT, MNIST_SOURCE) from e


def load_mnist(
    path: str | os.PathLike, download: bool = False
) -> tuple[LabeledImages, LabeledImages, list[str]]:
    """``(train, test, classes)`` of MNIST in torchvision's layout under ``path``."""
    if download and any(_find(mnist_raw_dir(path), f) is None for f in MNIST_EXPECTED_NAMES):
        download_mnist(path)
    train = load_mnist_split(path, "train")
    test = load_mnist_split(path, "test")
    return train, test, [str(d) for d in range(10)]
