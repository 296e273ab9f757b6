"""The KIND[:PATH] registry: parsing, roles, default locations, loaders and the status table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bgresample.data.base import ImageArray
from bgresample.data.kinds import (
    KINDS,
    ROLES,
    get_kind,
    load_background,
    load_id,
    load_ood,
    parse_spec,
    status,
)
from bgresample.data.pools import FolderImages, NpyImages, TinyImages
from bgresample.errors import UserError


def _helpers():
    """The fixture writers of test_loaders.py (test files are not a package)."""
    spec = importlib.util.spec_from_file_location(
        "loader_fixtures", Path(__file__).with_name("test_loaders.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fx = _helpers()


def test_parse_spec():
    assert parse_spec("cifar10:/data/c") == ("cifar10", "/data/c")
    assert parse_spec("Gaussian") == ("gaussian", None)
    assert parse_spec("folder:/a:b") == ("folder", "/a:b")
    for bad in ("", ":x", "npy:"):
        with pytest.raises(UserError, match="KIND:PATH"):
            parse_spec(bad)
    # a bare path: the kind to put in front is suggested, the path's case kept
    for bare, hint in (("/tmp/Pool.npy", "npy:/tmp/Pool.npy"), ("~/imgs", "folder:~/imgs")):
        with pytest.raises(UserError, match="kind in front") as e:
            parse_spec(bare)
        assert hint in str(e.value)


def test_registry_covers_the_paper_kinds():
    expected = {
        "cifar10", "cifar100", "svhn", "tiny-imagenet", "imagefolder", "folder", "npy",
        "tinyimages", "imagenet32", "random300k", "gaussian", "uniform", "textures", "lsun",
        "lsun-crop", "lsun-resize", "places365", "isun", "mnist",
    }  # fmt: skip
    assert set(KINDS) == expected
    for k in KINDS.values():
        assert k.roles and set(k.roles) <= set(ROLES) and k.layout and k.source
    assert KINDS["textures"].default_subpath == ""  # torchvision's root, as for cifar10
    assert KINDS["places365"].default_subpath == "places365"
    assert KINDS["tinyimages"].default_subpath == "tiny_images.bin"


def test_unknown_or_wrong_role_lists_valid_kinds():
    with pytest.raises(UserError, match="unknown dataset kind 'emnist'") as e:
        get_kind("emnist", "id")
    assert "cifar10, cifar100, svhn, tiny-imagenet, imagefolder" in str(e.value)
    with pytest.raises(UserError, match="cannot be background") as e:
        get_kind("gaussian", "background")
    assert "tinyimages" in str(e.value) and "gaussian" not in str(e.value).split("kinds:")[1]


def test_missing_path_message_has_layout_and_source():
    with pytest.raises(UserError) as e:
        load_background("tinyimages")
    assert "tinyimages:PATH or a --data-root" in str(e.value)
    assert "3072 bytes" in str(e.value) and "80mn_cifar_idxs.txt" in str(e.value)
    with pytest.raises(UserError, match="takes no PATH"):
        load_ood("uniform", "/x")


def test_noise_ood_is_normalised():
    g = load_ood("gaussian", n=50, seed=3)
    assert isinstance(g, ImageArray) and g.normalized and g.data.shape == (50, 3, 32, 32)
    assert g.data.abs().max() <= 1 and g.name == "gaussian"
    assert torch.equal(g.data, load_ood("gaussian", n=50, seed=3).data)
    u = load_ood("uniform", n=10)
    assert u.data.dtype == torch.float32 and u.data.min() >= -1


def test_loaders_at_default_locations_and_status(tmp_path):
    rows = {r.kind: r for r in status(tmp_path)}
    assert set(rows) == set(KINDS)
    assert rows["gaussian"].found and rows["gaussian"].path is None
    assert not rows["cifar10"].found and rows["cifar10"].path == tmp_path
    assert rows["folder"].path is None and not rows["folder"].found

    train_x, train_y, test_x, _ = fx.write_cifar10(tmp_path)
    fx.write_tiny_images(tmp_path / "tiny_images.bin", 5)
    (tmp_path / "80mn_cifar_idxs.txt").write_text("2\n")  # 1-based record indices, one a line
    fx.write_imagenet32(tmp_path / "Imagenet32_train")
    fx.write_tiny_imagenet(tmp_path)
    np.save(tmp_path / "300K_random_images.npy", fx._images(4, 0).transpose(0, 2, 3, 1))
    dtd = tmp_path / "dtd" / "dtd"  # as torchvision's DTD extracts it
    (dtd / "images" / "banded").mkdir(parents=True)
    Image.new("RGB", (300, 200), (5, 6, 7)).save(dtd / "images/banded/banded_0001.jpg")
    (dtd / "labels").mkdir()
    for split in ("train1", "val1", "test1"):
        (dtd / "labels" / f"{split}.txt").write_text("banded/banded_0001.jpg\n")

    rows = {r.kind: r for r in status(tmp_path)}
    found = {k for k, r in rows.items() if r.found}
    assert found == {
        "cifar10", "tinyimages", "imagenet32", "tiny-imagenet", "random300k", "textures",
        "gaussian", "uniform",
    }  # fmt: skip
    assert rows["textures"].path == tmp_path and rows["svhn"].roles

    train, test, classes = load_id("cifar10", data_root=tmp_path, check_integrity=False)
    assert torch.equal(train.data, torch.from_numpy(train_x)) and train.targets.tolist() == train_y
    with pytest.raises(UserError, match="corrupted"):  # md5 checked unless a test turns it off
        load_id("cifar10", str(tmp_path))
    ood = load_ood("cifar10", data_root=tmp_path, check_integrity=False)
    assert isinstance(ood, ImageArray) and torch.equal(ood.data, torch.from_numpy(test_x))
    assert len(load_ood("tiny-imagenet", data_root=tmp_path)) == 3

    tiny = load_background("tinyimages", data_root=tmp_path)
    assert isinstance(tiny, TinyImages) and len(tiny) == 4
    assert len(load_background("imagenet32", data_root=tmp_path)) == 19
    pool = load_background("random300k", data_root=tmp_path)
    assert isinstance(pool, NpyImages) and len(pool) == 4
    tex = load_ood("textures", data_root=tmp_path)
    assert isinstance(tex, FolderImages) and tex.family == ["banded"] and tex.name == "textures"
    assert tex.get_batch(torch.tensor([0])).shape == (1, 3, 32, 32)
    npy = load_ood("npy", str(tmp_path / "300K_random_images.npy"))
    assert len(npy) == 4 and npy.name == "npy"

    with pytest.raises(UserError, match="lsun-crop") as e:
        load_ood("lsun-crop", data_root=tmp_path)
    assert str(tmp_path / "LSUN") in str(e.value) and "odin" in str(e.value)
    with pytest.raises(UserError, match="lsun: folder not found") as e:  # the authors' LSUN
        load_ood("lsun", data_root=tmp_path)
    assert str(tmp_path / "lsun") in str(e.value) and "test_lmdb/data.mdb" in str(e.value)


def test_imagefolder_kind(tmp_path):
    with pytest.raises(UserError, match="imagefolder: folder not found") as e:
        load_id("imagefolder", str(tmp_path / "none"))
    assert "PATH/train/<class>" in str(e.value)
    with pytest.raises(UserError, match="give imagefolder:PATH"):
        load_id("imagefolder", data_root=tmp_path)
