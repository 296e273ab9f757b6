"""Unlabelled image sources read lazily from disk: background pools and OOD sets.

Every class here follows the protocol of :class:`bgresample.data.base.ImageArray` (``__len__``,
``get_batch``, ``name``, ``normalized``, ``family``, ``source``) without reading the whole set
into memory: arrays are memory-mapped and image files are decoded on demand.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bgresample.data.images import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    list_images,
    load_image,
    printable,
)
from bgresample.errors import UserError
from bgresample.files import atomic_write

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

NPY_LAYOUT = (
    "a .npy file of uint8 images, N x 32 x 32 x 3 (as 300K Random Images) or N x 3 x 32 x 32, "
    "or a .npz holding one such array"
)
RANDOM300K_SOURCE = (
    "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy (Outlier Exposure)"
)
TINYIMAGES_LAYOUT = (
    "tiny_images.bin: 79,302,016 records of 3072 bytes (32 x 32 x 3 uint8, column-major), "
    "with 80mn_cifar_idxs.txt (1-based indices of the records to exclude: the CIFAR-10/100 "
    "images) beside it"
)
TINYIMAGES_SOURCE = (
    "the 80 Million Tiny Images binary (withdrawn by its authors; existing copies only); "
    "80mn_cifar_idxs.txt from https://github.com/hendrycks/outlier-exposure"
)
IMAGENET32_LAYOUT = (
    "a folder with the pickled batches train_data_batch_1 .. train_data_batch_10 "
    "(dicts with 'data': N x 3072 uint8, 'labels': 1-based classes)"
)
IMAGENET32_SOURCE = "https://image-net.org/download-images.php (Downsampled ImageNet 32x32, train)"
FOLDER_LAYOUT = f"a folder tree of image files ({', '.join(IMAGE_EXTENSIONS)})"

RECORD_BYTES = 3072
TINYIMAGES_RECORDS = 79_302_016
TINYIMAGES_EXCLUDE = "80mn_cifar_idxs.txt"
IMAGENET32_BATCHES = tuple(f"train_data_batch_{k}" for k in range(1, 11))
IMAGENET32_CACHE = "imagenet32_train.npy"
IMAGENET32_LABELS = "imagenet32_train_labels.npy"


class ImageSource(Protocol):
    """What the engine reads a background pool or an OOD set through."""

    name: str
    normalized: bool
    family: list[str] | None
    source: list[str] | None

    def __len__(self) -> int: ...

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor: ...


def pool_signature(pool: ImageSource, samples: int = 64) -> str:
    """A short fingerprint of a pool's contents: its size and ``samples`` items evenly spaced
    through it, hashed (weights files keep it, so that weights learned on one pool are not
    read against another of the same size)."""
    n = len(pool)
    k = min(samples, n)
    idx = torch.tensor(sorted({(n - 1) * j // max(k - 1, 1) for j in range(k)}))
    h = hashlib.sha256(str(n).encode())
    h.update(pool.get_batch(idx).detach().cpu().contiguous().numpy().tobytes())
    return f"{SIGNATURE_VERSION}:{h.hexdigest()[:16]}"


#: Which way :func:`pool_signature` samples and hashes; a file recording another is not checked.
SIGNATURE_VERSION = "v1"


def data_error(dataset: str, path: Path, problem: str, layout: str, origin: str) -> UserError:
    """One message naming the dataset, the path, what is wrong, the layout and where to get it."""
    return UserError(
        f"{dataset}: {problem} ({path}). Expected layout: {layout}. Where to get it: {origin}."
    )


def _as_index(indices: torch.Tensor, n: int, name: str) -> np.ndarray:
    idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).reshape(-1))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"{name}: index out of range 0..{n - 1}")
    return idx


def _gather(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``array[idx]`` read in ascending index order (sequential on disk), returned in idx order."""
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx), *array.shape[1:]), dtype=array.dtype)
    out[order] = array[idx[order]]
    return out


#: The first bytes of a file numpy.save / numpy.savez writes.
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _npy_problem(path: Path, error: Exception) -> str:
    """What is wrong with a ``.npy`` / ``.npz`` that numpy could not load, in the user's terms
    (numpy's own message for a non-array file advises loading it as a pickle)."""
    want, kind, writer = (
        (_ZIP_MAGIC, ".npz", "numpy.savez")
        if path.suffix == ".npz"
        else (_NPY_MAGIC, ".npy", "numpy.save")
    )
    try:
        with open(path, "rb") as f:
            head = f.read(len(want))
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if head != want:
        return f"not a NumPy {kind} file (it lacks the header {writer} writes)"
    if "pickle" in str(error) or "Python objects" in str(error):
        return "an array of Python objects (a pickle), not uint8 images: bgresample loads none"
    return f"unreadable ({error})"


class NpyImages:
    """Images in a ``.npy`` (memory-mapped) or a single-array ``.npz`` (loaded: a zip member
    cannot be memory-mapped), N x 32 x 32 x 3 or N x 3 x 32 x 32 uint8."""

    def __init__(
        self, path: str | os.PathLike, name: str = "", origin: str = RANDOM300K_SOURCE
    ) -> None:
        path = Path(path)
        self.name = name or path.stem
        self.path = path
        self.normalized = False
        self.family: list[str] | None = None
        self.source: list[str] | None = None
        if not path.is_file():
            raise data_error(self.name, path, "file not found", NPY_LAYOUT, origin)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as f:
                    if len(f.files) != 1:
                        raise data_error(
                            self.name,
                            path,
                            f"the .npz holds {len(f.files)} arrays, not one",
                            NPY_LAYOUT,
                            origin,
                        )
                    array = f[f.files[0]]
            else:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
        except EOFError:
            raise data_error(
                self.name, path, "the file is empty or cut short", NPY_LAYOUT, origin
            ) from None
        except (OSError, ValueError) as e:
            raise data_error(self.name, path, _npy_problem(path, e), NPY_LAYOUT, origin) from e
        if array.dtype != np.uint8 or array.shape[1:] not in ((32, 32, 3), (3, 32, 32)):
            raise data_error(
                self.name,
                path,
                f"found a {array.dtype} array of shape {array.shape}; convert it (uint8, 32 x "
                "32, 3 channels), or save the images as files and give folder:PATH, which "
                "converts and resizes them",
                NPY_LAYOUT,
                origin,
            )
        if array.shape[0] == 0:
            raise data_error(self.name, path, "the array holds no images", NPY_LAYOUT, origin)
        self._array = array
        self._channels_last = array.shape[3] == 3

    def __len__(self) -> int:
        return self._array.shape[0]

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x 32 x 32 images at ``indices``."""
        batch = torch.from_numpy(_gather(self._array, _as_index(indices, len(self), self.name)))
        return batch.permute(0, 3, 1, 2).contiguous() if self._channels_last else batch


class TinyImages:
    """80 Million Tiny Images, memory-mapped from ``tiny_images.bin``.

    Each 3072-byte record is one 32 x 32 x 3 image in column-major order: pixel ``[h, w, c]`` is
    byte ``h + 32 * w + 1024 * c``. Records listed in the exclusion file (1-based, one per line)
    are left out: pool item ``i`` is the ``i``-th remaining record. ``exclude="auto"`` uses
    ``80mn_cifar_idxs.txt`` beside the .bin; without it the pool is refused (the .bin holds the
    CIFAR-10/100 images, test images included, which must not be trained on) unless
    ``allow_cifar_overlap`` is set. ``exclude=None`` excludes nothing. Opening the full
    79M-record file costs O(1) memory apart from the exclusion list.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        exclude: str | os.PathLike | None = "auto",
        name: str = "",
        *,
        allow_cifar_overlap: bool = False,
    ) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "tiny_images.bin"
        self.name = name or "tinyimages"
        self.normalized = False
        self.family: list[str] | None = None
        self.source: list[str] | None = None
        self.path = path
        if not path.is_file():
            raise data_error(
                self.name, path, "file not found", TINYIMAGES_LAYOUT, TINYIMAGES_SOURCE
            )
        size = path.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            raise data_error(
                self.name,
                path,
                f"truncated or wrong file: {size:,} bytes is not a whole number of "
                f"{RECORD_BYTES}-byte records (the full file is "
                f"{TINYIMAGES_RECORDS * RECORD_BYTES:,} bytes)",
                TINYIMAGES_LAYOUT,
                TINYIMAGES_SOURCE,
            )
        records = size // RECORD_BYTES
        self._records = np.memmap(path, dtype=np.uint8, mode="r", shape=(records, RECORD_BYTES))
        if exclude == "auto":
            auto = path.parent / TINYIMAGES_EXCLUDE
            if not (auto.is_file() or allow_cifar_overlap):
                raise UserError(
                    f"{self.name}: {TINYIMAGES_EXCLUDE} not found beside {path} ({auto}); without "
                    "it the pool keeps the records that are also CIFAR-10/100 images, test images "
                    "included, so the model would train on test data. Place 80mn_cifar_idxs.txt "
                    "beside tiny_images.bin (it ships with the Outlier Exposure code, "
                    "https://github.com/hendrycks/outlier-exposure), or accept the overlap "
                    "with --set data.allow_cifar_overlap=true"
                )
            exclude = auto if auto.is_file() else None
        self.exclude_file = None if exclude is None else Path(exclude)
        #: 0-based record indices left out, sorted and unique.
        self.excluded = (
            np.empty(0, dtype=np.int64)
            if self.exclude_file is None
            else self._read_exclusions(self.exclude_file, records)
        )
        self._shift = self.excluded - np.arange(len(self.excluded))
        self._len = records - len(self.excluded)

    def _read_exclusions(self, file: Path, records: int) -> np.ndarray:
        if not file.is_file():
            raise data_error(
                self.name, file, "exclusion file not found", TINYIMAGES_LAYOUT, TINYIMAGES_SOURCE
            )
        values = []
        with open(file) as f:
            for line_no, line in enumerate(f, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    v = int(text)
                except ValueError:
                    v = 0
                if not 1 <= v <= records:
                    raise UserError(
                        f"{self.name}: exclusion file {file}, line {line_no}: {text!r} is not a "
                        f"1-based record index of {self.path} (1..{records:,}); the list does not "
                        "belong to this file"
                    )
                values.append(v - 1)
        return np.unique(np.array(values, dtype=np.int64))

    def __len__(self) -> int:
        return self._len

    def record_index(self, indices: torch.Tensor) -> np.ndarray:
        """The 0-based records of pool items ``indices``."""
        idx = _as_index(indices, len(self), self.name)
        return idx + np.searchsorted(self._shift, idx, side="right")

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x 32 x 32 images at pool ``indices``."""
        raw = _gather(self._records, self.record_index(indices))
        # record bytes, C-order as (c, w, h) -> (c, h, w)
        return torch.from_numpy(raw.reshape(-1, 3, 32, 32).transpose(0, 1, 3, 2).copy())


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    **{
        (mod, fn): getattr(_multiarray, fn)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for fn in ("_reconstruct", "scalar")
    },
    **{
        (mod, "_frombuffer"): _numeric._frombuffer
        for mod in ("numpy.core.numeric", "numpy._core.numeric")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    **{
        (mod, t.__name__): t
        for mod in ("builtins", "__builtin__")
        for t in (list, dict, tuple, set, frozenset, bytes, bytearray)
    },
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other global is refused, so a
    crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays, lists and dicts are allowed"
            ) from None


def load_array_pickle(path: Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler (latin1 for Python 2 pickles)."""
    with open(path, "rb") as f:
        return _ArrayUnpickler(f, encoding="latin1").load()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


class Imagenet32:
    """Downsampled ImageNet 32 x 32 (train), memory-mapped from a .npy cache.

    The pickled batches cannot be memory-mapped, so the first use converts them, one batch at a
    time, into ``imagenet32_train.npy`` (N x 3 x 32 x 32 uint8) and ``imagenet32_train_labels.npy``
    in ``cache_dir`` (default: beside the batches), each written atomically. Delete the cache to
    rebuild it. ``family[i]`` is ``class_<label>`` with the batches' 1-based label.
    """

    def __init__(
        self, root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, name: str = ""
    ) -> None:
        root = Path(root)
        cache_dir = Path(cache_dir) if cache_dir is not None else root
        self.name = name or "imagenet32"
        self.normalized = False
        self.source: list[str] | None = None
        data_path, labels_path = cache_dir / IMAGENET32_CACHE, cache_dir / IMAGENET32_LABELS
        if not (data_path.is_file() and labels_path.is_file()):
            missing = [b for b in IMAGENET32_BATCHES if not (root / b).is_file()]
            if missing:
                raise data_error(
                    self.name,
                    root,
                    f"missing {', '.join(missing)}",
                    IMAGENET32_LAYOUT,
                    IMAGENET32_SOURCE,
                )
            self._convert([root / b for b in IMAGENET32_BATCHES], data_path, labels_path)
        self._array = np.load(data_path, mmap_mode="r", allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
        if self._array.shape[1:] != (3, 32, 32) or len(labels) != len(self._array):
            raise UserError(
                f"{self.name}: the cache {data_path} does not match {labels_path}; delete both "
                "to rebuild them from the batches"
            )
        names = {int(v): f"class_{int(v)}" for v in np.unique(labels)}
        self.family: list[str] | None = [names[v] for v in labels.tolist()]

    def _convert(self, batches: list[Path], data_path: Path, labels_path: Path) -> None:
        """Stream the batches into the .npy cache (header written last, once N is known), each
        file written atomically (:func:`bgresample.files.atomic_write`)."""
        header_len = len(_npy_header((0, 3, 32, 32)))
        labels: list[int] = []

        def write_data(f: Any) -> None:
            f.seek(header_len)
            for batch in batches:
                x, y = self._read_batch(batch)
                f.write(memoryview(x))  # rows are R, G, B planes: already C x H x W
                labels.extend(y)
            header = _npy_header((len(labels), 3, 32, 32))
            assert len(header) == header_len  # numpy pads the header for any N < 10**21
            f.seek(0)
            f.write(header)

        try:
            atomic_write(data_path, write_data)
            atomic_write(labels_path, lambda f: np.save(f, np.array(labels, dtype=np.int16)))
        except OSError as e:
            raise UserError(
                f"{self.name}: cannot write the cache {data_path} ({e}); pass a writable "
                "cache directory"
            ) from e

    def _read_batch(self, path: Path) -> tuple[np.ndarray, list[int]]:
        try:
            d = load_array_pickle(path)
        except Exception as e:  # any unpickling failure: refused global, truncated, garbage
            raise data_error(
                self.name,
                path,
                f"not a valid batch file ({type(e).__name__}: {e})",
                IMAGENET32_LAYOUT,
                IMAGENET32_SOURCE,
            ) from e
        x = d.get("data") if isinstance(d, dict) else None
        y = d.get("labels") if isinstance(d, dict) else None
        if (
            not isinstance(x, np.ndarray)
            or x.dtype != np.uint8
            or x.ndim != 2
            or x.shape[1] != RECORD_BYTES
            or y is None
            or len(y) != len(x)
        ):
            raise data_error(
                self.name,
                path,
                "not a dict with 'data' (N x 3072 uint8) and N 'labels'",
                IMAGENET32_LAYOUT,
                IMAGENET32_SOURCE,
            )
        return np.ascontiguousarray(x), [int(v) for v in y]

    def __len__(self) -> int:
        return self._array.shape[0]

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x 32 x 32 images at ``indices``."""
        return torch.from_numpy(_gather(self._array, _as_index(indices, len(self), self.name)))


def _missing_files(files: list[Path]) -> list[Path]:
    """Those of ``files`` that are not there, each folder listed once (one stat per file would
    be slow for the millions of files of a dataset's list)."""
    listed: dict[str, set[str]] = {}
    missing = []
    for f in files:
        folder, name = os.path.split(f)
        names = listed.get(folder)
        if names is None:
            try:
                names = listed[folder] = set(os.listdir(folder or "."))
            except OSError:
                names = listed[folder] = set()
        if name not in names and not f.is_file():  # is_file: a case-insensitive file system
            missing.append(f)
    return missing


def _relative(paths: list[Path], root: Path) -> list[str]:
    """Each of ``paths`` relative to ``root``, "/"-separated (by string operations: pathlib's
    relative_to costs microseconds a file)."""
    prefix = os.path.join(root, "")
    rel = [
        s[len(prefix) :] if s.startswith(prefix) else os.path.relpath(s, root)
        for s in map(os.fspath, paths)
    ]
    return rel if os.sep == "/" else [r.replace(os.sep, "/") for r in rel]


class FolderImages:
    """Image files in a folder tree, decoded on demand (shorter edge to 32, centre crop).

    Items are the image files in sorted path order, or ``files`` (each under ``root``, in that
    order: a dataset's file list) when given; those must all exist. ``family`` is an item's
    first-level subfolder ("" for files at the top) unless given (one per file), and ``source``
    its path relative to ``root``, both as printable text (bytes of a file name that are not UTF-8
    shown as ``\\xNN``). A file that cannot be decoded is replaced by the next readable item and its
    path is added to ``skipped`` (the reason to ``skip_reasons``).
    ``decodes`` marks a source whose batches are best read in DataLoader worker processes
    (:func:`bgresample.data.loader.batches`).
    """

    decodes = True

    def __init__(
        self,
        root: str | os.PathLike,
        recursive: bool = True,
        name: str = "",
        layout: str = FOLDER_LAYOUT,
        origin: str = "any folder of images",
        files: Sequence[str | os.PathLike] | None = None,
        family: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.name = name or self.root.name
        self.normalized = False
        if not self.root.is_dir():
            raise data_error(self.name, self.root, "folder not found", layout, origin)
        if files is None:
            self.paths = list_images(self.root, recursive)
            if not self.paths:
                raise data_error(
                    self.name, self.root, "no image files in the folder", layout, origin
                )
        else:
            self.paths = [Path(f) for f in files]
            if not self.paths:
                raise data_error(self.name, self.root, "the file list is empty", layout, origin)
            missing = _missing_files(self.paths)
            if missing:
                problem = (
                    f"{len(missing):,} of the {len(self.paths):,} listed image files are missing "
                    f"(e.g. {printable(missing[0])})"
                )
                raise data_error(self.name, self.root, problem, layout, origin)
        if family is not None and len(family) != len(self.paths):
            raise ValueError(f"{len(family)} families for {len(self.paths)} files")
        rel = _relative(self.paths, self.root)
        self.source: list[str] | None = [printable(r) for r in rel]
        self.family: list[str] | None = (
            [printable(r.split("/", 1)[0]) if "/" in r else "" for r in rel]
            if family is None
            else list(family)
        )
        # index -> (printable path, reason) of the files that could not be decoded
        self._bad: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def skipped(self) -> list[str]:
        """Paths of files that could not be decoded, in the order they were met."""
        return [path for path, _ in self._bad.values()]

    @property
    def skip_reasons(self) -> dict[str, str]:
        """Why each file of ``skipped`` could not be decoded, by path."""
        return dict(self._bad.values())

    def bad_items(self, since: int = 0) -> list[tuple[int, str, str]]:
        """(index, path, reason) of the unreadable files met so far, from the ``since``-th on."""
        return [(i, path, why) for i, (path, why) in list(self._bad.items())[since:]]

    def add_bad_items(self, items: list[tuple[int, str, str]]) -> None:
        """Record unreadable files met elsewhere (in a DataLoader worker process)."""
        for i, path, why in items:
            self._bad.setdefault(i, (path, why))

    def _read(self, i: int) -> torch.Tensor:
        n = len(self.paths)
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                return load_image(self.paths[j])
            except DECODE_ERRORS as e:
                why = printable(str(e) or type(e).__name__)
                self._bad[j] = (printable(self.paths[j]), why)
        first = next(iter(self._bad.values()))
        raise UserError(
            f"{self.name}: none of the {n} image files under {printable(self.root)} is readable "
            f"(e.g. {first[0]}: {first[1]}); check that the folder holds images "
            f"({', '.join(IMAGE_EXTENSIONS)}) that open in an image viewer"
        )

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x 32 x 32 images at ``indices`` (unreadable ones substituted)."""
        idx = _as_index(indices, len(self), self.name)
        if not idx.size:
            return torch.empty(0, 3, 32, 32, dtype=torch.uint8)
        return torch.stack([self._read(int(i)) for i in idx])
