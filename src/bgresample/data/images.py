"""Decoding image files into the 3 x 32 x 32 uint8 tensors every set is kept as.

Preprocessing follows the paper: resize the shorter edge to 32 (bilinear, as torchvision's
``Resize(32)`` on PIL images), then centre-crop 32 x 32 (as ``CenterCrop(32)``). Images that are
already 32 x 32 are kept pixel-exact.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: File name endings (lower case) listed as images.
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".pgm",
    ".pbm",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)

#: What PIL raises on a file it cannot read (truncated, empty, not an image, too large).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)

SIZE = 32

#: Most pixels (width x height, read from the file header) an image may have to be decoded. Sets
#: are only ever used at 32 x 32, so a larger image is refused as unreadable before any pixel data
#: is decoded; JPEGs are first reduced by the decoder (up to 8x per side, see :func:`load_pil`).
MAX_PIXELS = 4096 * 4096


class ImageTooLarge(ValueError):
    """An image with more than MAX_PIXELS pixels (one of DECODE_ERRORS: skipped as unreadable)."""


def printable(path: str | os.PathLike) -> str:
    """``path`` as a string that encodes to UTF-8: undecodable bytes of a file name (kept by
    Python as surrogate escapes, e.g. ``caf\\udce9.png``) are shown as ``\\xe9``; valid names are
    returned unchanged."""
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB.

    16- and 32-bit integer greyscale (``I;16*``, ``I``) is scaled by 1/257 so that 65535 maps to
    255 (PIL's own conversion clips instead). Alpha is dropped, as torchvision's loader does;
    palette images with transparency go through RGBA so that PIL resolves the palette.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):
        grey = np.asarray(img).astype(np.float64) / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def resize_crop(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Resize the shorter edge to ``size`` (bilinear), then centre-crop ``size`` x ``size``."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _check_pixels(img: Image.Image, size: int) -> None:
    """Refuse an image of more than MAX_PIXELS pixels before it is decoded (the size comes from
    the header); a JPEG is first reduced by the decoder to no less than 2 ``size`` per side."""
    w, h = img.size
    if w * h <= MAX_PIXELS:
        return
    img.draft("RGB", (2 * size, 2 * size))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
    if img.size[0] * img.size[1] > MAX_PIXELS:
        raise ImageTooLarge(
            f"{w} x {h} pixels is more than the {MAX_PIXELS:,}-pixel limit for images used at "
            f"{size} x {size}; downscale the file"
        )


def load_pil(path: str | os.PathLike, size: int = SIZE) -> Image.Image:
    """The image at ``path`` as an RGB PIL image of ``size`` x ``size``; raises DECODE_ERRORS.

    An image over MAX_PIXELS pixels raises ImageTooLarge without being decoded, unless it is a
    JPEG that the decoder's reduced-scale (draft) mode brings under the limit.
    """
    with Image.open(path) as img:
        _check_pixels(img, size)
        img.load()
        return resize_crop(to_rgb(img), size)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 3 x H x W tensor."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy())


def load_image(path: str | os.PathLike, size: int = SIZE) -> torch.Tensor:
    """The image at ``path`` as a uint8 3 x ``size`` x ``size`` tensor; raises DECODE_ERRORS."""
    return pil_to_tensor(load_pil(path, size))


def load_images(paths: list[Path], size: int = SIZE) -> torch.Tensor:
    """Decode ``paths`` (in threads: PIL releases the GIL) into a uint8 N x 3 x size x size tensor.

    An unreadable file raises its DECODE_ERRORS exception with the path added to the message.
    """

    def one(path: Path) -> torch.Tensor:
        try:
            return load_image(path, size)
        except DECODE_ERRORS as e:
            raise OSError(f"cannot read image {printable(path)}: {e}") from e

    if not paths:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return torch.stack(list(pool.map(one, paths)))


def is_image_file(name: str) -> bool:
    """Whether ``name`` ends with one of IMAGE_EXTENSIONS (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``root``, sorted by their path relative to ``root``.

    Links to folders are followed, but each real folder is listed once: first the tree without
    its links, then the links (in path order) to folders not yet listed. A folder linking to
    itself or to an ancestor is therefore never walked twice, and cannot loop.
    """
    root = Path(root)
    found: list[Path] = []
    listed: set[str] = set()  # real paths of the folders listed
    links: list[str] = []  # links to folders met, not yet followed

    def walk(top: str) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            real = os.path.realpath(folder)
            if real in listed:
                continue
            listed.add(real)
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for e in entries:
                try:
                    is_dir = e.is_dir()
                    is_link = is_dir and e.is_symlink()
                except OSError:
                    continue
                if not is_dir:
                    if is_image_file(e.name):
                        found.append(Path(e.path))
                elif recursive:
                    (links if is_link else stack).append(e.path)

    def rel(path: str | Path) -> tuple[str, ...]:
        return Path(path).relative_to(root).parts

    walk(os.fspath(root))
    while links:
        links.sort(key=rel, reverse=True)
        walk(links.pop())
    return sorted(found, key=rel)
