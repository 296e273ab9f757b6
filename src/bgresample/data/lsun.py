"""LSUN's test split as the paper's authors load it: torchvision's ``LSUN(ROOT, classes="test")``.

That class reads the LMDB database ``ROOT/test_lmdb`` (keys: image ids; values: the encoded
full-size images, WebP or JPEG), items in key order. :class:`LsunImages` reads the same database
with the ``lmdb`` package (an optional dependency, imported when the set is loaded) without
torchvision's class, which writes a ``_cache_...`` key list into the working directory. Images
are decoded on demand as the image folders are (:class:`~bgresample.data.pools.FolderImages`):
RGB, shorter edge resized to 32 (PIL bilinear, as torchvision's ``Resize(32)`` on PIL images),
centre-cropped 32 x 32 (as ``CenterCrop(32)``), the authors' evaluation transform.

ODIN's "LSUN (crop)" folder of 32 x 32 crops is another set: the ``lsun-crop`` kind.
"""

from __future__ import annotations

import importlib
import io
import os
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import torch

from bgresample.data.images import DECODE_ERRORS, list_images, load_image, printable
from bgresample.data.pools import data_error
from bgresample.errors import UserError

#: The folder under the root that torchvision's LSUN reads for ``classes="test"``.
LSUN_DB = "test_lmdb"
#: What shows that the set is there (lock.mdb is not needed to read it).
LSUN_FILES = (f"{LSUN_DB}/data.mdb",)
LSUN_ITEMS = 10_000
LSUN_LAYOUT = (
    f"PATH/{LSUN_DB}/data.mdb (and lock.mdb): LSUN's test split, {LSUN_ITEMS:,} scene images in "
    "an LMDB database (keys: image ids; values: encoded WebP or JPEG images), the folder "
    f"torchvision's LSUN(PATH, classes='test') reads; PATH may also be {LSUN_DB}/ itself"
)
LSUN_SOURCE = (
    "LSUN's download script (https://github.com/fyu/lsun: python download.py -c test) gives "
    f"test_lmdb.zip; unzip it in PATH so that PATH/{LSUN_DB}/data.mdb exists"
)
INSTALL_HINT = "pip install 'bgresample[lsun]' (or pip install lmdb)"

#: The databases opened in this process, by real path and data file (lmdb refuses to open one
#: twice in a process; a database unzipped anew at the same path is another); a forked DataLoader
#: worker inherits them and reads through them, as with torchvision's LSUN (read-only and
#: without locks, nothing is shared but the read-only file mapping).
_OPEN: dict[tuple[str, int, int, int, int], Any] = {}


def import_lmdb(purpose: str) -> ModuleType:
    """The ``lmdb`` package, else a UserError saying why ``purpose`` cannot run and what to
    install."""
    try:
        return importlib.import_module("lmdb")
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != "lmdb":
            raise  # lmdb is there; something it imports is not
    raise UserError(
        f"{purpose} needs the lmdb package, which is not installed; {INSTALL_HINT}"
    ) from None


class LsunImages:
    """LSUN's test split from its LMDB database, decoded on demand (see the module docstring).

    ``path`` is the folder holding ``test_lmdb/`` (torchvision's root) or ``test_lmdb/`` itself.
    Items are the database's keys in key order (torchvision's order); ``source[i]`` is item
    ``i``'s key (an image id) and ``family`` is None. A value that cannot be decoded is replaced
    by the next readable item and its key is added to ``skipped`` (the reason to
    ``skip_reasons``), as :class:`~bgresample.data.pools.FolderImages` does for files.
    ``decodes``: batches are best read in DataLoader worker processes. The database is opened
    once per process (read-only, without locks), shared by the sources that read it.
    """

    decodes = True

    def __init__(self, path: str | os.PathLike, name: str = "lsun") -> None:
        self.root = Path(path)
        self.name = name
        self.normalized = False
        self.family: list[str] | None = None
        self.db = self._find_db()
        self._lmdb = import_lmdb(f"{self.name} (LSUN's test set, an LMDB database)")
        try:
            with self._environment().begin(write=False) as txn:
                keys = list(txn.cursor().iternext(keys=True, values=False))
        except self._lmdb.Error as e:
            self._fail(f"unreadable LMDB database {LSUN_DB}/ ({e})")
        if not keys:
            self._fail(f"the LMDB database {LSUN_DB}/ holds no images")
        self._keys: list[bytes] = keys
        self.source: list[str] | None = [k.decode("utf-8", "backslashreplace") for k in keys]
        # index -> (key, reason) of the values that could not be decoded
        self._bad: dict[int, tuple[str, str]] = {}

    def _fail(self, problem: str) -> NoReturn:
        raise data_error(self.name, self.root, problem, LSUN_LAYOUT, LSUN_SOURCE)

    def _find_db(self) -> Path:
        """The LMDB folder (holding data.mdb) that ``root`` is or holds; a UserError saying what
        ``root`` holds instead (ODIN's LSUN (crop) images, another LSUN split, nothing)."""
        root = self.root
        if not root.is_dir():
            self._fail("folder not found")
        for db in (root / LSUN_DB, root):
            if (db / "data.mdb").is_file():
                return db
        if (root / LSUN_DB).is_dir():
            self._fail(f"missing {LSUN_DB}/data.mdb (an incomplete unzip of test_lmdb.zip?)")
        if (root / "lsun" / LSUN_DB / "data.mdb").is_file():
            self._fail(
                f"no {LSUN_DB}/ here, but lsun/{LSUN_DB}/ below: PATH is the data root; pass "
                "lsun:PATH/lsun, or --data-root PATH and lsun alone"
            )
        # ODIN's LSUN.tar.gz holds LSUN/test/<images>: look no deeper (PATH may be a big tree)
        try:
            subfolders = [e.path for e in os.scandir(root) if e.is_dir()]
        except OSError:
            subfolders = []
        images = sum(len(list_images(f, recursive=False)) for f in [root, *subfolders])
        if images:
            self._fail(
                f"this folder holds {images:,} image files and no {LSUN_DB}/ database: that "
                "is ODIN's LSUN (crop) set (LSUN.tar.gz), the kind lsun-crop (pass "
                "lsun-crop:PATH; ODIN's LSUN_resize is lsun-resize:PATH), not LSUN's test split "
                "that the kind lsun reads as the paper's authors did"
            )
        others = sorted(p.name for p in root.glob("*_lmdb") if p.is_dir())
        if others:
            self._fail(
                f"no {LSUN_DB}/, only {', '.join(others)}: the kind lsun reads LSUN's test split"
            )
        self._fail(f"missing {LSUN_DB}/data.mdb")

    def _environment(self) -> Any:
        """The database, opened read-only once in this process (see :data:`_OPEN`)."""
        try:
            st = os.stat(self.db / "data.mdb")
        except OSError as e:
            self._fail(f"cannot read {LSUN_DB}/data.mdb ({e})")
        key = (os.path.realpath(self.db), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        env = _OPEN.get(key)
        if env is None:
            try:
                env = self._lmdb.open(
                    str(self.db), readonly=True, lock=False, readahead=False, meminit=False
                )
            except self._lmdb.Error as e:
                self._fail(
                    f"{LSUN_DB}/data.mdb does not open as an LMDB database ({e}); if the file is "
                    "cut short or not LSUN's, unzip test_lmdb.zip again"
                )
            _OPEN[key] = env
        return env

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lmdb"]  # a module does not pickle (a spawned worker imports it again)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lmdb = import_lmdb(f"{self.name} (LSUN's test set, an LMDB database)")

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def skipped(self) -> list[str]:
        """Keys of the values that could not be decoded, in the order they were met."""
        return [key for key, _ in self._bad.values()]

    @property
    def skip_reasons(self) -> dict[str, str]:
        """Why each value of ``skipped`` could not be decoded, by key."""
        return dict(self._bad.values())

    def bad_items(self, since: int = 0) -> list[tuple[int, str, str]]:
        """(index, key, reason) of the unreadable values met so far, from the ``since``-th on."""
        return [(i, key, why) for i, (key, why) in list(self._bad.items())[since:]]

    def add_bad_items(self, items: list[tuple[int, str, str]]) -> None:
        """Record unreadable values met elsewhere (in a DataLoader worker process)."""
        for i, key, why in items:
            self._bad.setdefault(i, (key, why))

    def _decode(self, txn: Any, j: int) -> torch.Tensor:
        value = txn.get(self._keys[j])
        if value is None:
            raise ValueError("the key has no value")
        return load_image(io.BytesIO(value))  # type: ignore[arg-type]  # PIL opens a file object

    def _read(self, txn: Any, i: int) -> torch.Tensor:
        n = len(self._keys)
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                return self._decode(txn, j)
            except DECODE_ERRORS as e:
                key = self._keys[j].decode("utf-8", "backslashreplace")
                self._bad[j] = (key, printable(str(e) or type(e).__name__))
        first = next(iter(self._bad.values()))
        raise UserError(
            f"{self.name}: none of the {n} images in the LMDB database {printable(self.db)} is "
            f"readable (e.g. key {first[0]}: {first[1]}); check that it is LSUN's {LSUN_DB} "
            "(values: encoded WebP or JPEG images)"
        )

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x 32 x 32 images at ``indices`` (unreadable ones substituted)."""
        idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).reshape(-1))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.name}: index out of range 0..{len(self) - 1}")
        if not idx.size:
            return torch.empty(0, 3, 32, 32, dtype=torch.uint8)
        try:
            with self._environment().begin(write=False) as txn:
                return torch.stack([self._read(txn, int(i)) for i in idx])
        except self._lmdb.Error as e:
            self._fail(f"unreadable LMDB database {LSUN_DB}/ ({e})")
