"""Write pool items (a selected background subset) as a dataset that other tools read.

Two formats (``FORMATS``):

* ``npy``: ``images.npy``, an ``N x 32 x 32 x 3`` uint8 array in the layout of the Outlier
  Exposure ``300K_random_images.npy`` (``np.load(path)`` gives NHWC uint8), streamed in chunks
  through :func:`bgresample.files.atomic_write` (nothing is left at the path until the whole
  file is written);
* ``folder``: ``images/``, one PNG per item named by its pool index (``00000123.png``), in one
  subfolder per family when the pool has families; written into a hidden folder first and moved
  into place when complete.

Either way ``export.csv`` lists, one row per item in the order of the exported dataset,
``export_row`` (the item's position: its row in ``images.npy``, or its index when ``images/`` is
read back as a ``folder:`` pool, whose items are the files in sorted path order), ``index`` (the
pool index), ``weight`` (where known), ``family`` and ``source`` (where known), ``file`` (the
PNG's path under ``images/``; empty for npy) and ``skipped``. An item whose image file cannot be
decoded is left out of the dataset (never replaced by another image): its row has no
``export_row`` and says why in ``skipped``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bgresample.data.pools import ImageSource, NpyImages, TinyImages
from bgresample.data.validation import SubsetSource
from bgresample.errors import UserError
from bgresample.files import (
    UnsafePathError,
    WriteError,
    atomic_write,
    atomic_write_text,
    check_folder,
    open_new,
)
from bgresample.progress import progress
from bgresample.resampling.selection import read_manifest

log = logging.getLogger("bgresample")

FORMATS = ("npy", "folder")
NPY_NAME = "images.npy"
FOLDER_NAME = "images"
MANIFEST_NAME = "export.csv"
EXPORT_HEADER = ("export_row", "index", "weight", "family", "source", "file", "skipped")
#: Pool items read and written per step.
CHUNK = 1024
SIZE = 32


@dataclass
class Exported:
    """What :func:`export_pool` wrote: the dataset (``images.npy`` or ``images/``), the manifest,
    the number of items written and of those left out as unreadable."""

    path: Path
    manifest: Path
    count: int
    format: str
    skipped: int = 0


def top_k(weights: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted pool indices of the ``k`` largest weights (among equal weights the lower index
    wins, as ``select --method topk``)."""
    n = weights.numel()
    if not 1 <= k <= n:
        raise UserError(f"--top-k {k}: choose a number of items in 1..{n} (the pool's size)")
    order = torch.sort(weights.detach().cpu(), descending=True, stable=True).indices
    return order[:k].sort().values


def item_sources(pool: Any, indices: torch.Tensor) -> list[str]:
    """Where each pool item at ``indices`` comes from: the pool's ``source`` (file or provenance)
    where it has one, else ``FILE#RECORD`` (tinyimages, 0-based record; an ``.npy``, its row) or
    ``NAME#ROW`` (row of the whole array), rows and records counted before any validation
    hold-out was taken out."""
    keep = indices.tolist()
    if getattr(pool, "source", None) is not None:
        return [pool.source[i] for i in keep]
    if isinstance(pool, SubsetSource):
        return item_sources(pool.base, pool.indices[indices])
    if isinstance(pool, TinyImages):
        return [f"{pool.path.name}#{r}" for r in pool.record_index(indices).tolist()]
    if isinstance(pool, NpyImages):
        return [f"{pool.path.name}#{i}" for i in keep]
    return [f"{pool.name}#{i}" for i in keep]


def sources_at(pool: Any, indices: torch.Tensor) -> dict[int, str]:
    """Pool index -> :func:`item_sources` for the items at ``indices`` (a manifest's source
    column, by which export and finetune recognise the pool it was chosen from)."""
    return dict(zip(indices.tolist(), item_sources(pool, indices), strict=True))


def _folder_name(family: str) -> str:
    """A family as a safe folder name ("" for none: files at the top)."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", family)
    return "_" + name[1:] if name.startswith(".") else name


def _hwc(batch: torch.Tensor, what: str) -> np.ndarray:
    """uint8 B x 3 x 32 x 32 (the pool's layout) -> B x 32 x 32 x 3 numpy."""
    if batch.dtype != torch.uint8 or tuple(batch.shape[1:]) != (3, SIZE, SIZE):
        raise UserError(
            f"{what}: the pool gives {batch.dtype} images of shape {tuple(batch.shape[1:])}, "
            f"not uint8 3 x {SIZE} x {SIZE}; only pixel-space pools can be exported"
        )
    return batch.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()


def _chunks(n: int, chunk: int, quiet: bool, desc: str) -> Any:
    return progress(range(0, n, chunk), desc=desc, unit="batch", quiet=quiet)


def _unreadable(pool: ImageSource, indices: torch.Tensor) -> dict[int, str]:
    """Position -> why, for the items at ``indices`` whose image file could not be decoded (a
    decoding pool substitutes another image for them; see ``bad_items``)."""
    base: Any = pool
    while isinstance(base, SubsetSource):
        indices, base = base.indices[indices], base.base
    if not hasattr(base, "bad_items"):
        return {}
    bad = {i: f"unreadable ({why})" for i, _, why in base.bad_items()}
    return {k: bad[i] for k, i in enumerate(indices.tolist()) if i in bad}


def _read(pool: ImageSource, indices: torch.Tensor) -> tuple[np.ndarray, dict[int, str]]:
    """HWC images at ``indices`` and the positions of the unreadable ones (zeroed)."""
    images = _hwc(pool.get_batch(indices), pool.name)
    bad = _unreadable(pool, indices)
    if bad:
        images[list(bad)] = 0
    return images, bad


def write_npy(
    pool: ImageSource,
    indices: torch.Tensor,
    path: Path,
    chunk: int = CHUNK,
    quiet: bool = False,
) -> dict[int, str]:
    """``pool`` items ``indices`` as an N x 32 x 32 x 3 uint8 ``.npy`` at ``path``, streamed in
    chunks and written atomically; returns position -> why for the items left out as
    unreadable (the file is then rewritten without them)."""
    n = len(indices)
    bad: dict[int, str] = {}

    def write(handle: Any) -> None:
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, SIZE, SIZE, 3)}
        np.lib.format.write_array_header_1_0(handle, header)
        for start in _chunks(n, chunk, quiet, "export npy"):
            images, missed = _read(pool, indices[start : start + chunk])
            bad.update({start + k: why for k, why in missed.items()})
            handle.write(images.data)

    atomic_write(path, write)
    if bad:
        whole = np.load(path, mmap_mode="r")
        keep = np.array([k for k in range(n) if k not in bad], dtype=np.int64)

        def compact(handle: Any) -> None:
            header = {"descr": "|u1", "fortran_order": False, "shape": (len(keep), SIZE, SIZE, 3)}
            np.lib.format.write_array_header_1_0(handle, header)
            for start in range(0, len(keep), chunk):
                handle.write(np.ascontiguousarray(whole[keep[start : start + chunk]]).data)

        atomic_write(path, compact)
        del whole
    return bad


def write_folder(
    pool: ImageSource,
    indices: torch.Tensor,
    files: Sequence[str],
    path: Path,
    chunk: int = CHUNK,
    quiet: bool = False,
) -> dict[int, str]:
    """``pool`` items ``indices`` as PNGs ``path / files[k]``; written into a hidden folder
    beside ``path``, then moved into place (replacing an earlier ``path``). Returns position ->
    why for the items left out as unreadable (no PNG is written for them)."""
    tmp = path.with_name(f".{path.name}.tmp")
    old = path.with_name(f".{path.name}.old")
    bad: dict[int, str] = {}
    try:
        check_folder(path.parent)
        for stale in (tmp, old):
            if os.path.islink(stale):
                raise UnsafePathError(stale, f"it is a symbolic link (to {os.readlink(stale)})")
            if stale.exists():
                shutil.rmtree(stale)
        tmp.mkdir(parents=True)
        for folder in sorted({os.path.dirname(f) for f in files} - {""}):
            (tmp / folder).mkdir()
        for start in _chunks(len(indices), chunk, quiet, "export png"):
            images, missed = _read(pool, indices[start : start + chunk])
            bad.update({start + k: why for k, why in missed.items()})
            for k, (img, name) in enumerate(zip(images, files[start : start + chunk], strict=True)):
                if k in missed:
                    continue
                with open_new(tmp / name) as handle:
                    Image.fromarray(img).save(handle, format="PNG")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        if not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        if isinstance(e, WriteError):
            raise
        raise WriteError(path, e, path.exists()) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return bad


def _png_names(indices: torch.Tensor, family: list[str] | None, n: int) -> list[str]:
    width = max(8, len(str(max(n - 1, 0))))
    names = [f"{i:0{width}d}.png" for i in indices.tolist()]
    if family is None:
        return names
    return [
        f"{_folder_name(f)}/{name}" if f else name for f, name in zip(family, names, strict=True)
    ]


def write_export_manifest(path: Path, rows: list[list[str]]) -> None:
    """CSV ``EXPORT_HEADER``, rows in export order; written atomically."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([list(EXPORT_HEADER), *rows])
    atomic_write_text(path, buffer.getvalue())


def export_pool(
    pool: ImageSource,
    indices: torch.Tensor,
    out: str | os.PathLike,
    fmt: str,
    *,
    weights: torch.Tensor | None = None,
    chunk: int = CHUNK,
    quiet: bool = False,
) -> Exported:
    """Write ``pool`` items ``indices`` into folder ``out`` in format ``fmt`` with its
    ``export.csv``; ``weights`` (one per index, NaN where unknown) fill the weight column.

    npy rows keep the order of ``indices``; folder rows are listed in sorted file order, the
    order in which a ``folder:`` pool reads them back. The other format's output left in ``out``
    by an earlier export is removed.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if chunk < 1:
        raise UserError(f"--batch-size must be at least 1, got {chunk}")
    indices = torch.as_tensor(indices, dtype=torch.int64).cpu().reshape(-1)
    n = len(pool)
    if len(indices) == 0:
        raise UserError("nothing to export: the subset is empty")
    if int(indices.min()) < 0 or int(indices.max()) >= n:
        raise UserError(f"pool indices must lie in 0..{n - 1} (the pool's {n} items)")
    if len(indices.unique()) != len(indices):
        raise UserError("the subset lists a pool index more than once; list each item once")
    if weights is not None and len(weights) != len(indices):
        raise ValueError(f"{len(weights)} weights for {len(indices)} indices")
    out = Path(out)
    family = None if pool.family is None else [pool.family[i] for i in indices.tolist()]
    if fmt == "folder":
        files = _png_names(indices, family, n)
        order = sorted(range(len(files)), key=lambda k: Path(files[k]).parts)
        perm = torch.tensor(order, dtype=torch.int64)
        indices, files = indices[perm], [files[k] for k in order]
        weights = None if weights is None else weights[perm]
        family = None if family is None else [family[k] for k in order]
        path = out / FOLDER_NAME
        bad = write_folder(pool, indices, files, path, chunk, quiet)
        files = ["" if k in bad else f for k, f in enumerate(files)]
        stale = out / NPY_NAME
    else:
        files = [""] * len(indices)
        path = out / NPY_NAME
        bad = write_npy(pool, indices, path, chunk, quiet)
        stale = out / FOLDER_NAME
    sources = item_sources(pool, indices)
    weight_text = (
        [""] * len(indices)
        if weights is None
        else ["" if math.isnan(w) else repr(w) for w in weights.double().tolist()]
    )
    written = iter(range(len(indices) - len(bad)))
    rows = [
        [
            "" if k in bad else str(next(written)),
            str(i),
            w,
            "" if family is None else family[k],
            src,
            f,
            bad.get(k, ""),
        ]
        for k, (i, w, src, f) in enumerate(
            zip(indices.tolist(), weight_text, sources, files, strict=True)
        )
    ]
    manifest = out / MANIFEST_NAME
    write_export_manifest(manifest, rows)
    if stale.is_dir():
        shutil.rmtree(stale)
        log.info("removed %s of an earlier export", stale)
    elif stale.is_file():
        stale.unlink()
        log.info("removed %s of an earlier export", stale)
    return Exported(
        path=path, manifest=manifest, count=len(indices) - len(bad), format=fmt, skipped=len(bad)
    )


def subset_from_manifest(
    path: str | os.PathLike, pool: ImageSource
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pool indices and weights (NaN where a row has none; None without any) of a subset CSV of
    ``bgresample select`` / ``run``, checked against ``pool``: indices in range, and, where the
    manifest records them, the same family and source (:func:`item_sources`) at each index
    (else the manifest was written for another pool or another validation hold-out)."""
    hint = (
        "use the pool and config (--config, --set, --background, --data-root) that `select` "
        "used: manifest indices refer to the pool without its validation hold-out "
        "(data.validation.pool_fraction)"
    )
    try:
        m = read_manifest(path)
    except ValueError as e:
        raise UserError(f"{e}; pass a subset CSV that `bgresample select` wrote") from None
    idx, n = m["indices"], len(pool)
    bad = torch.nonzero((idx < 0) | (idx >= n)).flatten()
    if len(bad):
        row = int(bad[0])
        raise UserError(
            f"{path}:{row + 2}: pool index {int(idx[row])} is out of range 0..{n - 1} "
            f"({len(bad)} such rows); {hint}"
        )
    family = getattr(pool, "family", None)
    pool_has = {
        "family": None if family is None else [family[i] for i in idx.tolist()],
        "source": item_sources(pool, idx) if m["source"] is not None else None,
    }
    for col, theirs in pool_has.items():
        mine = m[col]
        if mine is None or theirs is None:
            continue
        for row, (i, value, have) in enumerate(zip(idx.tolist(), mine, theirs, strict=True)):
            if value and value != have:
                raise UserError(
                    f"{path}:{row + 2}: index {i} has {col} {value!r} but pool item {i} has "
                    f"{have!r}; {hint}"
                )
    return idx, m["weights"]
