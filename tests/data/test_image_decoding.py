"""Image decoding: every PIL mode to RGB uint8, shorter edge to 32 + centre crop, file listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from bgresample.data.images import is_image_file, list_images, load_image, load_images


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_grayscale_rgba_palette_and_rgb(tmp_path):
    rng = _rng()
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert torch.equal(load_image(tmp_path / "grey.png"), torch.from_numpy(grey).expand(3, 32, 32))

    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    expected = torch.from_numpy(rgba[..., :3]).permute(2, 0, 1)
    assert torch.equal(load_image(tmp_path / "rgba.png"), expected)

    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    idx = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    expected = torch.from_numpy(palette[idx]).permute(2, 0, 1)
    for name, info in (("p.png", {}), ("p_transparent.png", {"transparency": 0})):
        img = Image.frombytes("P", (32, 32), idx.tobytes())
        img.putpalette(palette.reshape(-1).tolist())
        img.save(tmp_path / name, **info)
        assert torch.equal(load_image(tmp_path / name), expected), name

    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.bmp")
    assert torch.equal(load_image(tmp_path / "rgb.bmp"), torch.from_numpy(rgb).permute(2, 0, 1))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    levels = np.arange(256, dtype=np.uint16) * 257  # 0, 257, ..., 65535
    deep = np.resize(levels, (32, 32))
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = load_image(tmp_path / "deep.png")
    expected = torch.from_numpy((deep // 257).astype(np.uint8))
    assert torch.equal(out, expected.expand(3, 32, 32))
    assert out.max() == 255 and (out == 255).float().mean() < 0.01  # clipping would saturate


def test_resize_shorter_edge_then_centre_crop_matches_torchvision(tmp_path):
    rng = _rng(1)
    reference = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32)])
    for h, w in ((64, 64), (48, 80), (90, 37), (33, 32)):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / "x.png")
        expected = np.asarray(reference(Image.fromarray(arr))).transpose(2, 0, 1)
        out = load_image(tmp_path / "x.png")
        assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
        assert torch.equal(out, torch.from_numpy(expected.copy())), (h, w)


def test_list_images_sorted_recursive_and_by_extension(tmp_path):
    for rel in ("b/2.JPEG", "b/1.png", "a/z/9.jpg", "top.PNG", "notes.txt", "b/readme"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == ["a/z/9.jpg", "b/1.png", "b/2.JPEG", "top.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["top.PNG"]
    assert is_image_file("X.TiFf") and not is_image_file("x.txt")


def test_load_images_stacks_and_names_a_bad_file(tmp_path):
    Image.new("RGB", (40, 32), (1, 2, 3)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    out = load_images([tmp_path / "a.png"] * 3)
    assert out.shape == (3, 3, 32, 32) and (out[:, 2] == 3).all()
    with pytest.raises(OSError, match="b.png"):
        load_images([tmp_path / "a.png", tmp_path / "b.png"])
