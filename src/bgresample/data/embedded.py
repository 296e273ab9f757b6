"""The embedded benchmark: an OOD-detection benchmark built only from data shipped in pip packages.

Nothing is downloaded. The pieces come from:

* **ID**: scikit-learn's handwritten digits (8x8, 17 grey levels), classes 0-7, brought to 3x32x32.
* **Background pool**: unlabelled 32x32 images of four *families*:

  - ``photo``: crops at varied scales of photographs shipped in scikit-image and scikit-learn;
  - ``pattern``: procedural stripes, checkers, shapes, gradients and plaids;
  - ``noise``: smoothed colour noise, salt-and-pepper and blob fields;
  - ``glyph``: letters and symbols rendered with matplotlib's TTF fonts in the digits' style
    (8x8, 17 grey levels, up-sampled) -- the rare family that resembles the ID data.

  Every item records its provenance: its family and its source (photograph, pattern kind or font).
* **OOD test sets**, none of whose sources is in the pool: held-out digit classes 8 and 9
  (near-OOD), glyphs in held-out fonts, pen scribbles in the digits' style, crops of held-out
  photographs, held-out textures, LFW faces, plus Gaussian and Uniform noise as docs/method.md
  defines.
* **Validation OOD set** ``val-glyphs``, never used for testing or training: glyphs rendered
  like the pool's in two more fonts (:data:`VALIDATION_FONTS`), used by neither the pool nor the
  ``glyphs`` test set. With the pool hold-out (``bgresample.data.validation``) it is the
  validation OOD data that defaults are chosen on; the hold-out alone is too easy (at FPR95
  every background variant flagged 0 or 1 of the 72 ID validation images per seed).

Fonts: :data:`POOL_FONTS` feed the pool's glyph family, :data:`HELDOUT_FONTS` the ``glyphs``
test set and :data:`VALIDATION_FONTS` the ``val-glyphs`` validation set; the three are disjoint.

The benchmark is deterministic for a seed and cached as one ``.npz`` under the data root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.files import atomic_write
from bgresample.rng import noise_set_seed

#: Bump when the generator changes so that stale caches are rebuilt (it is part of the cache key).
#: 3: the ``faces`` set holds LFW's 100 faces only, no longer its 100 non-face crops too.
#: 4: the ``val-glyphs`` validation set (drawn from a stream of its own: no other array changes).
EMBEDDED_VERSION = 4
#: Part of the generator's seed, kept apart from EMBEDDED_VERSION so that a change that draws no
#: random numbers (as version 3's) leaves every other array as it was. Bump it only for a change
#: that must reshuffle the random draws.
RNG_VERSION = 2
#: ``skimage.data.lfw_subset()`` holds 100 faces, then 100 non-face background crops.
LFW_FACES = 100

#: What ``bgresample datasets`` says of the embedded benchmark, and what it is built from.
DESCRIPTION = (
    "the default benchmark: scikit-learn's digits 0-7 as ID data, a pool of photo crops, "
    "patterns, noise and glyphs, and OOD sets none of whose sources is in the pool; generated "
    "on first use and cached under the data root"
)
BUILT_FROM = (
    "data inside pip packages that bgresample installs, nothing to download: scikit-learn "
    "(digits, photographs), scikit-image (photographs, LFW faces) and matplotlib (fonts)"
)

ID_CLASSES = tuple(range(8))
NEAR_OOD_CLASSES = (8, 9)

#: Fonts of matplotlib that render Latin letters. Upright ones feed the pool; the italic ones and
#: cmb10 are held out for the ``glyphs`` OOD test set; VALIDATION_FONTS (below) make the
#: ``val-glyphs`` validation OOD set. No font is in two of the three.
POOL_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
HELDOUT_FONTS = (
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmti10.ttf",
    "cmb10.ttf",
)
#: Computer Modern math italic and math symbols: used by neither the pool nor the test set, and
#: both render every character of GLYPH_CHARS as a distinct glyph.
VALIDATION_FONTS = ("cmmi10.ttf", "cmsy10.ttf")
GLYPH_CHARS = "ABCDEFGHJKLMNPQRTUVWXYZabdefghkmnpqrtuwxyz#$%&?@+*<>{}"

#: Photographs (scikit-image ``data`` names, or ``sklearn:NAME.jpg``) in the pool, and held out.
POOL_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "page",
    "text",
    "immunohistochemistry",
    "sklearn:china.jpg",
)
HELDOUT_PHOTOS = ("hubble_deep_field", "retina", "sklearn:flower.jpg", "colorwheel")
HELDOUT_TEXTURES = ("brick", "grass", "gravel")

PATTERN_KINDS = ("stripes", "checker", "shapes", "gradient", "plaid")
NOISE_KINDS = ("smooth", "saltpepper", "blobs")

#: Pool composition (fractions of the pool size).
FAMILY_SHARES = {"photo": 0.50, "pattern": 0.27, "noise": 0.19, "glyph": 0.04}

NOISE_OOD = ("gaussian", "uniform")

#: Name of the validation OOD set of glyphs in VALIDATION_FONTS.
VAL_GLYPHS = "val-glyphs"


@dataclass
class EmbeddedConfig:
    """Sizes of the embedded benchmark."""

    pool_size: int = 20000
    test_fraction: float = 0.5
    ood_size: int = 1000
    noise_ood_size: int = 10000
    min_crop_std: float = 12.0
    family_shares: dict[str, float] = field(default_factory=lambda: dict(FAMILY_SHARES))


@dataclass
class EmbeddedBenchmark:
    """ID train/test, the background pool with provenance, the OOD test sets and the validation
    OOD sets (``val_ood``: ``val-glyphs``, never a test set)."""

    train: LabeledImages
    test: LabeledImages
    pool: ImageArray
    ood: dict[str, ImageArray]
    classes: tuple[str, ...]
    meta: dict = field(default_factory=dict)
    val_ood: dict[str, ImageArray] = field(default_factory=dict)


# ----------------------------------------------------------------------------- sources


def _matplotlib_font(name: str) -> str:
    import matplotlib

    path = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib font {name} not found at {path}")
    return str(path)


def _photo(name: str) -> np.ndarray:
    """A photograph as HxWx3 uint8."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name.split(":", 1)[1])
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, anti-aliased resize of float NCHW images."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _digit_style(low: np.ndarray) -> np.ndarray:
    """8x8 intensities in [0, 1] -> the digits' look: 17 grey levels, 3x32x32 uint8."""
    q = np.round(np.clip(low, 0, 1) * 16) / 16
    x = torch.from_numpy(q.astype(np.float32))[:, None]
    up = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return _to_uint8(up.repeat(1, 3, 1, 1))


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def _render_glyphs(fonts: tuple[str, ...], n: int, rng: np.random.Generator):
    """``n`` glyphs in the digits' style, each a random character, font, size, shift and slant."""
    from PIL import Image, ImageDraw, ImageFont

    loaded = {f: ImageFont.truetype(_matplotlib_font(f), 48) for f in fonts}
    lows, sources = [], []
    for _ in range(n):
        font = fonts[rng.integers(len(fonts))]
        ch = GLYPH_CHARS[rng.integers(len(GLYPH_CHARS))]
        canvas = Image.new("L", (96, 96))
        ImageDraw.Draw(canvas).text((20, 10), ch, font=loaded[font], fill=255)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        box = canvas.getbbox() or (0, 0, 96, 96)
        glyph = canvas.crop(box)
        # Fit the glyph into a 6-8 px box like the digits, keeping its aspect ratio.
        h = int(rng.integers(6, 9))
        w = max(2, min(8, round(h * glyph.width / max(glyph.height, 1))))
        small = np.asarray(glyph.resize((w, h), Image.BOX), dtype=np.float32) / 255.0
        small = small / max(small.max(), 1e-6)
        low = np.zeros((8, 8), np.float32)
        top, left = int(rng.integers(0, 8 - h + 1)), int(rng.integers(0, 8 - w + 1))
        low[top : top + h, left : left + w] = small
        lows.append(low)
        sources.append(f"{font}:{ch}")
    return _digit_style(np.stack(lows)), sources


def _scribbles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random pen strokes (smooth curves through 3-5 points) in the digits' style."""
    hi = 32
    yy, xx = np.mgrid[0:hi, 0:hi].astype(np.float32)
    lows = []
    for _ in range(n):
        pts = rng.uniform(5, hi - 5, size=(int(rng.integers(3, 6)), 2))
        t = np.linspace(0, 1, 60)
        segments = zip(pts[:-1], pts[1:], strict=True)
        curve = np.concatenate(
            [a[None] * (1 - t[:, None]) + b[None] * t[:, None] for a, b in segments]
        )
        width = rng.uniform(2.0, 3.5)
        d2 = (yy[..., None] - curve[:, 0]) ** 2 + (xx[..., None] - curve[:, 1]) ** 2
        img = np.exp(-d2.min(-1) / (2 * width**2))
        low = img.reshape(8, 4, 8, 4).mean(axis=(1, 3))
        lows.append(low / max(low.max(), 1e-6))
    return _digit_style(np.stack(lows).astype(np.float32))


def _crops(photos: tuple[str, ...], n: int, rng: np.random.Generator, min_std: float):
    """``n`` 32x32 crops at log-uniform scales of the photographs; near-constant crops rejected."""
    from PIL import Image

    loaded = {p: Image.fromarray(_photo(p)) for p in photos}
    out = np.empty((n, 3, 32, 32), np.uint8)
    sources: list[str] = []
    i = 0
    while i < n:
        name = photos[rng.integers(len(photos))]
        img = loaded[name]
        w, h = img.size
        side = int(math.exp(rng.uniform(math.log(12), math.log(min(h, w)))))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img.resize((32, 32), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        small = np.asarray(crop).transpose(2, 0, 1)
        if rng.random() < 0.5:
            small = small[:, :, ::-1]
        if small.std() < min_std:
            continue
        out[i] = small
        sources.append(name)
        i += 1
    return out, sources


def _patterns(n: int, rng: np.random.Generator):
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    out = np.empty((n, 3, 32, 32), np.uint8)
    kinds = []
    for i in range(n):
        kind = PATTERN_KINDS[rng.integers(len(PATTERN_KINDS))]
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        theta = rng.uniform(0, np.pi)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        v = -xx * np.sin(theta) + yy * np.cos(theta)
        if kind == "stripes":
            m = (np.sin(2 * np.pi * rng.uniform(1.5, 8) * u + rng.uniform(0, 6)) > 0).astype(
                np.float32
            )
        elif kind == "checker":
            f = rng.uniform(1.5, 6)
            m = ((np.floor(u * f) + np.floor(v * f)) % 2).astype(np.float32)
        elif kind == "shapes":
            m = np.zeros((32, 32), np.float32)
            for _ in range(int(rng.integers(1, 5))):
                cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.4)
                if rng.random() < 0.5:
                    m = np.maximum(m, ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(np.float32))
                else:
                    m = np.maximum(
                        m, ((abs(yy - cy) < r) & (abs(xx - cx) < r * 0.7)).astype(np.float32)
                    )
        elif kind == "gradient":
            m = (u - u.min()) / max(u.max() - u.min(), 1e-6)
        else:  # plaid
            m = 0.5 + 0.25 * (
                np.sin(2 * np.pi * rng.uniform(1, 5) * u)
                + np.sin(2 * np.pi * rng.uniform(1, 5) * v)
            )
        img = c0[:, None, None] * (1 - m) + c1[:, None, None] * m
        out[i] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
        kinds.append(kind)
    return out, kinds


def _noise(n: int, rng: np.random.Generator):
    out = np.empty((n, 3, 32, 32), np.uint8)
    kinds = []
    for i in range(n):
        kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
        if kind == "smooth":
            coarse = int(rng.choice([2, 4, 8, 16]))
            z = torch.from_numpy(rng.uniform(0, 1, (1, 3, coarse, coarse)).astype(np.float32))
            img = F.interpolate(z, size=(32, 32), mode="bicubic", align_corners=False)[0].numpy()
        elif kind == "saltpepper":
            density = rng.uniform(0.05, 0.5)
            base = rng.uniform(0, 1, (3, 1, 1))
            mask = rng.random((1, 32, 32)) < density
            img = np.where(mask, rng.integers(0, 2, (1, 32, 32)), base).astype(np.float32)
        else:  # blobs
            z = torch.from_numpy(rng.normal(0, 1, (1, 1, 32, 32)).astype(np.float32))
            k = torch.ones(1, 1, 7, 7) / 49
            s = F.conv2d(F.pad(z, (3, 3, 3, 3), mode="circular"), k)[0, 0].numpy()
            m = (s > rng.normal(0, 0.1)).astype(np.float32)
            c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
            img = c0[:, None, None] * (1 - m) + c1[:, None, None] * m
        out[i] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
        kinds.append(kind)
    return out, kinds


def _lfw_faces() -> np.ndarray:
    import skimage.data

    # 200 x 25 x 25 in [0, 1]: the first 100 are faces, the others non-face background crops.
    faces = skimage.data.lfw_subset()[:LFW_FACES].astype(np.float32)
    x = torch.from_numpy(faces)[:, None].repeat(1, 3, 1, 1)
    return _to_uint8(_resize_batch(x, 32))


# ----------------------------------------------------------------------------- building


def generate(config: EmbeddedConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Generate every array of the benchmark for a seed (deterministic)."""
    # Independent streams for the ID split, each pool family, the pool's order, the OOD test
    # sets and the validation OOD set: changing the family shares (the control run) changes no
    # OOD set and no ID split, and the validation set (the 8th stream, unused before version 4)
    # changes no other array.
    streams = np.random.SeedSequence([seed, RNG_VERSION]).spawn(8)
    rng, rng_photo, rng_pattern, rng_noise, rng_glyph, rng_order, rng_ood, rng_val = (
        np.random.default_rng(s) for s in streams
    )
    arrays: dict[str, np.ndarray] = {}

    images, labels = _digits()
    digits = _digit_style(images)
    id_mask = np.isin(labels, ID_CLASSES)
    id_idx = np.flatnonzero(id_mask)
    train_idx, test_idx = [], []
    for c in ID_CLASSES:  # stratified split
        members = id_idx[labels[id_idx] == c]
        members = members[rng.permutation(len(members))]
        n_test = round(len(members) * config.test_fraction)
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train_idx, test_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    arrays["train_x"], arrays["train_y"] = digits[train_idx], labels[train_idx]
    arrays["test_x"], arrays["test_y"] = digits[test_idx], labels[test_idx]

    # Background pool.
    shares = {f: config.family_shares.get(f, 0.0) for f in FAMILY_SHARES}
    total = sum(shares.values())
    counts = {f: round(s / total * config.pool_size) for f, s in shares.items()}
    largest = max(counts, key=lambda f: shares[f])
    counts[largest] += config.pool_size - sum(counts.values())
    makers = {
        "photo": lambda n: _crops(POOL_PHOTOS, n, rng_photo, config.min_crop_std),
        "pattern": lambda n: _patterns(n, rng_pattern),
        "noise": lambda n: _noise(n, rng_noise),
        "glyph": lambda n: _render_glyphs(POOL_FONTS, n, rng_glyph),
    }
    parts, fam, src = [], [], []
    for family, make in makers.items():
        if counts[family]:
            x, s = make(counts[family])
            parts.append(x), fam.extend([family] * len(s)), src.extend(s)
    pool = np.concatenate(parts)
    order = rng_order.permutation(len(pool))
    arrays["pool_x"] = pool[order]
    families = sorted(FAMILY_SHARES)
    arrays["pool_family"] = np.array([families.index(f) for f in fam], np.int16)[order]
    arrays["pool_source"] = np.array(src)[order]

    # OOD test sets: sources disjoint from the pool.
    arrays["ood_digits89"] = digits[np.isin(labels, NEAR_OOD_CLASSES)]
    n, std = config.ood_size, config.min_crop_std
    arrays["ood_glyphs"], _ = _render_glyphs(HELDOUT_FONTS, n, rng_ood)
    arrays["ood_scribbles"] = _scribbles(n, rng_ood)
    arrays["ood_photos"], _ = _crops(HELDOUT_PHOTOS, n, rng_ood, std)
    arrays["ood_textures"], _ = _crops(HELDOUT_TEXTURES, n, rng_ood, std)
    arrays["ood_faces"] = _lfw_faces()

    # Validation OOD set: glyphs in fonts that neither the pool nor the test sets use.
    arrays["val_glyphs"], val_sources = _render_glyphs(VALIDATION_FONTS, n, rng_val)
    arrays["val_glyphs_source"] = np.array(val_sources)
    return arrays


OOD_SETS = ("digits89", "glyphs", "scribbles", "photos", "textures", "faces", *NOISE_OOD)
#: OOD sets made by a generator that also makes a pool family: glyphs (the glyph renderer, other
#: fonts), scribbles (the glyph family's 8x8, 17-level digit-style rendering), photos and textures
#: (the photo family's crop generator, other images).
SHARED_GENERATOR = {"glyphs": "glyph", "scribbles": "glyph", "photos": "photo", "textures": "photo"}
#: The others: their average measures detection of outliers unlike anything in the pool.
UNSHARED_OOD_SETS = tuple(s for s in OOD_SETS if s not in SHARED_GENERATOR)
NEAR_OOD_SETS = ("digits89", "glyphs", "scribbles")


def noise_ood(kind: str, n: int, seed: int) -> torch.Tensor:
    """Gaussian / Uniform OOD images exactly as docs/method.md defines them, in *normalised* space.

    Gaussian: N(0, 0.5^2) per pixel, clamped to [-1, 1]; Uniform: U[-1, 1]; shape n x 3 x 32 x 32.
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return (torch.randn(n, 3, 32, 32, generator=g) * 0.5).clamp_(-1, 1)
    if kind == "uniform":
        return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    raise ValueError(f"unknown noise OOD kind {kind!r}; expected one of {NOISE_OOD}")


def _cache_key(config: EmbeddedConfig, seed: int) -> str:
    blob = json.dumps({"v": EMBEDDED_VERSION, "seed": seed, **config.__dict__}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def default_data_root() -> Path:
    """``$BGRESAMPLE_DATA`` if set, else ``$XDG_CACHE_HOME/bgresample`` (``~/.cache/bgresample``):
    never the current directory."""
    if os.environ.get("BGRESAMPLE_DATA"):
        return Path(os.environ["BGRESAMPLE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "bgresample"


def load_embedded(
    root: str | os.PathLike | None = None,
    seed: int = 0,
    config: EmbeddedConfig | None = None,
) -> EmbeddedBenchmark:
    """Build (once, then cached under ``root``) and return the embedded benchmark."""
    config = config or EmbeddedConfig()
    root = Path(root) if root is not None else default_data_root()
    path = root / f"embedded-{_cache_key(config, seed)}.npz"
    arrays = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError):
            arrays = None  # corrupt cache: rebuild
    if arrays is None:
        arrays = generate(config, seed)
        atomic_write(path, lambda fh: np.savez(fh, **arrays))
    families = sorted(FAMILY_SHARES)
    pool = ImageArray(
        torch.from_numpy(arrays["pool_x"]),
        family=[families[i] for i in arrays["pool_family"]],
        source=[str(s) for s in arrays["pool_source"]],
        name="embedded-pool",
    )
    ood = {
        name: ImageArray(torch.from_numpy(arrays[f"ood_{name}"]), name=name)
        for name in OOD_SETS
        if name not in NOISE_OOD
    }
    for i, kind in enumerate(NOISE_OOD):
        ood[kind] = ImageArray(
            noise_ood(kind, config.noise_ood_size, noise_set_seed(seed, i)),
            name=kind,
            normalized=True,
        )
    val_ood = {
        VAL_GLYPHS: ImageArray(
            torch.from_numpy(arrays["val_glyphs"]),
            source=[str(s) for s in arrays["val_glyphs_source"]],
            name=VAL_GLYPHS,
        )
    }
    return EmbeddedBenchmark(
        train=LabeledImages(
            torch.from_numpy(arrays["train_x"]), torch.from_numpy(arrays["train_y"])
        ),
        test=LabeledImages(torch.from_numpy(arrays["test_x"]), torch.from_numpy(arrays["test_y"])),
        pool=pool,
        ood=ood,
        classes=tuple(str(c) for c in ID_CLASSES),
        meta={"name": "embedded", "seed": seed, "cache": str(path), **config.__dict__},
        val_ood=val_ood,
    )
