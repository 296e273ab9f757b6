"""The embedded benchmark: determinism, sizes, provenance, and OOD sources absent from the pool."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from bgresample.data import embedded as E
from bgresample.data.embedded import EmbeddedConfig, generate, load_embedded, noise_ood

SMALL = EmbeddedConfig(pool_size=800, ood_size=80, noise_ood_size=300)


def test_deterministic_for_a_seed(tmp_path):
    a, b = generate(SMALL, seed=3), generate(SMALL, seed=3)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = generate(SMALL, seed=4)
    assert not np.array_equal(a["pool_x"], c["pool_x"])


def test_cached_load_equals_fresh_generation(tmp_path):
    first = load_embedded(tmp_path, seed=1, config=SMALL)
    assert len(list(tmp_path.glob("embedded-*.npz"))) == 1
    second = load_embedded(tmp_path, seed=1, config=SMALL)
    assert torch.equal(first.pool.data, second.pool.data)
    assert first.pool.source == second.pool.source
    assert torch.equal(first.ood["gaussian"].data, second.ood["gaussian"].data)
    assert torch.equal(first.val_ood["val-glyphs"].data, second.val_ood["val-glyphs"].data)
    assert first.val_ood["val-glyphs"].source == second.val_ood["val-glyphs"].source


@pytest.fixture(scope="module")
def default_bench(tmp_path_factory):
    return load_embedded(tmp_path_factory.mktemp("emb"), seed=0, config=EmbeddedConfig())


def test_documented_sizes(default_bench):
    b = default_bench
    assert len(b.train) + len(b.test) == 1443  # the 0-7s among scikit-learn's 1797 digits
    assert abs(len(b.test) - 0.5 * 1443) <= 8
    assert b.train.data.shape[1:] == (3, 32, 32) and b.train.data.dtype == torch.uint8
    assert set(b.train.targets.tolist()) == set(range(8)) == set(b.test.targets.tolist())
    assert len(b.pool) == 20000
    counts = b.pool.family_counts()
    assert counts == {"glyph": 800, "noise": 3800, "pattern": 5400, "photo": 10000}
    assert len(b.ood["digits89"]) == 354  # all 8s and 9s
    for name in ("glyphs", "scribbles", "photos", "textures"):
        assert len(b.ood[name]) == 1000
    assert len(b.ood["faces"]) == 100  # LFW's faces, without its non-face crops
    for name in ("gaussian", "uniform"):
        assert b.ood[name].data.shape == (10000, 3, 32, 32) and b.ood[name].normalized
    assert list(b.val_ood) == ["val-glyphs"] and len(b.val_ood["val-glyphs"]) == 1000
    assert b.val_ood["val-glyphs"].data.dtype == torch.uint8


def test_stratified_split(default_bench):
    train = np.bincount(default_bench.train.targets.numpy())
    test = np.bincount(default_bench.test.targets.numpy())
    ratio = test / (train + test)
    assert np.all(np.abs(ratio - 0.5) < 0.01)


def test_provenance_and_disjoint_sources(default_bench):
    pool = default_bench.pool
    fam = np.array(pool.family)
    src = np.array(pool.source)
    photo_sources = set(src[fam == "photo"])
    assert photo_sources <= set(E.POOL_PHOTOS)
    assert not photo_sources & (set(E.HELDOUT_PHOTOS) | set(E.HELDOUT_TEXTURES))
    fonts = {s.split(":")[0] for s in src[fam == "glyph"]}
    assert fonts <= set(E.POOL_FONTS) and not fonts & set(E.HELDOUT_FONTS)
    assert set(src[fam == "pattern"]) <= set(E.PATTERN_KINDS)
    assert set(src[fam == "noise"]) <= set(E.NOISE_KINDS)


def test_no_ood_image_appears_in_pool(default_bench):
    def digests(x: torch.Tensor) -> set[str]:
        return {hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in x}

    pool = digests(default_bench.pool.data)
    for name, images in default_bench.ood.items():
        if not images.normalized:
            assert not pool & digests(images.data), name
    assert not pool & digests(default_bench.train.data)
    val = digests(default_bench.val_ood["val-glyphs"].data)
    assert not pool & val and not val & digests(default_bench.ood["glyphs"].data)


def test_validation_glyphs_use_fonts_of_their_own(default_bench):
    """val-glyphs: every source a font of VALIDATION_FONTS (both used), none of which the pool
    or the glyphs test set uses."""
    val = default_bench.val_ood["val-glyphs"]
    assert val.name == "val-glyphs" and val.source is not None and len(val.source) == len(val)
    fonts = {s.split(":")[0] for s in val.source}
    assert fonts == set(E.VALIDATION_FONTS)
    assert not set(E.VALIDATION_FONTS) & (set(E.POOL_FONTS) | set(E.HELDOUT_FONTS))
    assert {s.split(":", 1)[1] for s in val.source} <= set(E.GLYPH_CHARS)


@pytest.mark.parametrize("font", E.VALIDATION_FONTS)
def test_validation_fonts_render_every_character_as_a_distinct_glyph(font):
    from PIL import Image, ImageDraw, ImageFont

    loaded = ImageFont.truetype(E._matplotlib_font(font), 48)
    bitmaps = set()
    for ch in E.GLYPH_CHARS:
        canvas = Image.new("L", (96, 96))
        ImageDraw.Draw(canvas).text((20, 10), ch, font=loaded, fill=255)
        assert canvas.getbbox() is not None, (font, ch)  # not blank
        bitmaps.add(canvas.tobytes())
    assert len(bitmaps) == len(E.GLYPH_CHARS)  # no two characters drawn alike (no tofu)


def test_validation_glyphs_leave_every_other_array_unchanged(monkeypatch):
    """The val-glyphs set is drawn from the 8th seed stream alone: the arrays of a generation
    without it (its rendering skipped) are those of a generation with it, bit for bit."""
    seed = 3
    with_val = generate(SMALL, seed=seed)
    render = E._render_glyphs

    def skip_validation(fonts, n, rng):
        if fonts == E.VALIDATION_FONTS:  # draw nothing from rng
            return np.zeros((n, 3, 32, 32), np.uint8), [f"{fonts[0]}:A"] * n
        return render(fonts, n, rng)

    monkeypatch.setattr(E, "_render_glyphs", skip_validation)
    without = generate(SMALL, seed=seed)
    monkeypatch.undo()
    others = [k for k in with_val if not k.startswith("val_")]
    assert {"train_x", "test_x", "pool_x", "pool_source", "ood_glyphs", "ood_faces"} <= set(others)
    assert set(others) == {k for k in without if not k.startswith("val_")}
    for key in others:
        np.testing.assert_array_equal(with_val[key], without[key], err_msg=key)
    assert with_val["val_glyphs"].any() and not without["val_glyphs"].any()
    # and it is exactly the renderer's output on that stream
    stream = np.random.SeedSequence([seed, E.RNG_VERSION]).spawn(8)[7]
    x, sources = render(E.VALIDATION_FONTS, SMALL.ood_size, np.random.default_rng(stream))
    np.testing.assert_array_equal(with_val["val_glyphs"], x)
    assert with_val["val_glyphs_source"].tolist() == sources
    assert len(x) == SMALL.ood_size


def test_faces_are_the_100_lfw_faces_only():
    import skimage.data

    lfw = skimage.data.lfw_subset()  # 100 faces, then 100 non-face background crops
    assert lfw.shape == (200, 25, 25)
    faces = E._lfw_faces()
    assert faces.shape == (100, 3, 32, 32) and faces.dtype == np.uint8
    # The same pipeline on the first 100 images: faces only, nothing from the non-face half.
    x = torch.from_numpy(lfw[:100].astype(np.float32))[:, None].repeat(1, 3, 1, 1)
    np.testing.assert_array_equal(faces, E._to_uint8(E._resize_batch(x, 32)))


def test_cache_key_follows_the_version(monkeypatch):
    # A cache built before a generator change (e.g. faces with non-faces) must not be reused.
    key = E._cache_key(SMALL, 0)
    monkeypatch.setattr(E, "EMBEDDED_VERSION", E.EMBEDDED_VERSION - 1)
    assert E._cache_key(SMALL, 0) != key


def test_noise_sets_follow_method_md():
    g = noise_ood("gaussian", 2000, seed=0)
    assert g.min() >= -1 and g.max() <= 1
    clamped = float(((g == -1) | (g == 1)).float().mean())
    assert abs(clamped - 0.0455) < 0.003  # P(|N(0, 0.5^2)| > 1) = P(|z| > 2)
    inner = g[(g > -1) & (g < 1)]
    assert abs(float(g.mean())) < 0.01 and 0.43 < float(inner.std()) < 0.45  # truncated at 2 sd
    u = noise_ood("uniform", 2000, seed=0)
    assert u.min() >= -1 and u.max() <= 1 and abs(float(u.std()) - 2 / 12**0.5) < 0.01
    with pytest.raises(ValueError, match="expected one of"):
        noise_ood("pink", 1, 0)


def test_default_data_root_is_a_cache_never_the_current_directory(monkeypatch, tmp_path):
    from bgresample.data.embedded import default_data_root

    monkeypatch.setenv("BGRESAMPLE_DATA", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"
    monkeypatch.delenv("BGRESAMPLE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "bgresample"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_root() == tmp_path / "home" / ".cache" / "bgresample"
