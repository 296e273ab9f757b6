"""The lsun kind: LSUN's test split as the paper's authors load it (torchvision's
``LSUN(ROOT, classes="test")`` with ``Resize(32)`` + ``CenterCrop(32)``), read from a tiny LMDB
database in torchvision's layout; ODIN's folder as lsun-crop; the errors."""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tv_datasets
from torchvision import transforms

from bgresample.cli import main
from bgresample.data import loader
from bgresample.data.kinds import KINDS, load_ood, status
from bgresample.data.lsun import LsunImages
from bgresample.data.pools import FolderImages
from bgresample.errors import UserError

#: key -> (width, height, mode, format): non-square, both orientations, a short side already 32,
#: an upscaled one, a greyscale JPEG; inserted out of key order (items are in key order).
IMAGES = {
    b"f3a9c1e2": (96, 64, "RGB", "JPEG"),
    b"0b77d2aa": (40, 121, "RGB", "WEBP"),
    b"9c00e5f1": (256, 171, "L", "JPEG"),
    b"5e12ab03": (32, 77, "RGB", "WEBP"),
    b"2d4f6a8c": (25, 20, "RGB", "JPEG"),
}
KEYS = sorted(IMAGES)


def _encoded(width: int, height: int, mode: str, fmt: str, seed: int) -> bytes:
    """A smooth random image (noise upsampled, so that resampling has structure to keep)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 4, 2), max(width // 4, 2), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=90)
    return buf.getvalue()


def write_lsun(root: Path, values: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    """``root/test_lmdb`` as LSUN's test_lmdb.zip unzips (data.mdb, lock.mdb): keys image ids,
    values encoded images."""
    if values is None:
        values = {k: _encoded(*spec, seed=i) for i, (k, spec) in enumerate(IMAGES.items())}
    root.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(root / "test_lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()
    return values


def _hwc(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).numpy()


def test_lsun_matches_torchvision_lsun_with_the_authors_transform(tmp_path, monkeypatch):
    values = write_lsun(tmp_path / "lsun")
    assert {p.name for p in (tmp_path / "lsun" / "test_lmdb").iterdir()} == {
        "data.mdb",
        "lock.mdb",
    }
    # the authors' loader itself: it writes its key cache _cache_... into the working directory,
    # and is closed before ours opens the database (lmdb opens one database once per process)
    monkeypatch.chdir(tmp_path)
    transform = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32)])
    reference = tv_datasets.LSUN(str(tmp_path / "lsun"), classes="test", transform=transform)
    expected = np.stack([np.asarray(reference[i][0]) for i in range(len(reference))])
    reference.dbs[0].env.close()

    lsun = load_ood("lsun", data_root=tmp_path)
    assert isinstance(lsun, LsunImages) and lsun.name == "lsun" and lsun.decodes
    assert len(lsun) == len(IMAGES) and not lsun.normalized and lsun.family is None
    assert lsun.source == [k.decode() for k in KEYS]  # torchvision's order: LMDB key order
    batch = lsun.get_batch(torch.arange(len(lsun)))
    assert batch.shape == (len(IMAGES), 3, 32, 32) and batch.dtype == torch.uint8

    got = _hwc(batch)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(got, expected)  # same PIL resampling: exact in practice

    # and per image: decode with PIL, RGB, Resize(32) + CenterCrop(32) on the PIL image
    for i, key in enumerate(KEYS):
        img = Image.open(io.BytesIO(values[key])).convert("RGB")
        assert np.array_equal(got[i], np.asarray(transform(img))), key
    order = torch.tensor([4, 0, 2, 2])
    assert torch.equal(lsun.get_batch(order), batch[order])
    assert lsun.get_batch(torch.tensor([], dtype=torch.int64)).shape == (0, 3, 32, 32)
    with pytest.raises(IndexError, match="lsun: index out of range"):
        lsun.get_batch(torch.tensor([5]))


def test_lsun_path_forms_status_and_kind(tmp_path):
    write_lsun(tmp_path / "data" / "lsun")
    kind = KINDS["lsun"]
    assert kind.default_subpath == "lsun" and kind.roles == ("ood",) and kind.decodes
    assert kind.nominal == {"ood": 10_000} and "test_lmdb/data.mdb" in kind.layout
    for path in (tmp_path / "data" / "lsun", tmp_path / "data" / "lsun" / "test_lmdb"):
        assert len(load_ood("lsun", str(path))) == len(IMAGES)
    rows = {r.kind: r for r in status(tmp_path / "data")}
    assert rows["lsun"].found and rows["lsun"].path == tmp_path / "data" / "lsun"
    assert not rows["lsun-crop"].found and rows["lsun-crop"].path == tmp_path / "data" / "LSUN"
    assert kind.size("ood", tmp_path / "data" / "lsun", None) == len(IMAGES)


def test_odin_crop_folder_is_lsun_crop_and_lsun_says_so(tmp_path):
    crop = tmp_path / "LSUN" / "test"  # ODIN's LSUN.tar.gz: 32 x 32 crops
    crop.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32), (i, 2 * i, 3 * i)).save(crop / f"{i}.png")
    ood = load_ood("lsun-crop", data_root=tmp_path)
    assert isinstance(ood, FolderImages) and len(ood) == 3 and ood.name == "lsun-crop"
    assert KINDS["lsun-crop"].default_subpath == "LSUN"

    with pytest.raises(UserError) as e:
        load_ood("lsun", str(tmp_path / "LSUN"))
    msg = str(e.value)
    assert "3 image files and no test_lmdb/" in msg and "ODIN's LSUN (crop)" in msg
    assert "lsun-crop:PATH" in msg and "download.py -c test" in msg
    assert "test_lmdb/data.mdb" in msg and str(tmp_path / "LSUN") in msg


def test_missing_database_messages(tmp_path):
    with pytest.raises(UserError, match=r"lsun: folder not found") as e:
        load_ood("lsun", data_root=tmp_path)
    assert str(tmp_path / "lsun") in str(e.value) and "download.py -c test" in str(e.value)
    (tmp_path / "lsun").mkdir()
    with pytest.raises(UserError, match=r"lsun: missing test_lmdb/data.mdb \("):
        load_ood("lsun", data_root=tmp_path)
    (tmp_path / "lsun" / "bedroom_val_lmdb").mkdir()
    with pytest.raises(UserError, match="only bedroom_val_lmdb"):
        load_ood("lsun", data_root=tmp_path)
    (tmp_path / "lsun" / "test_lmdb").mkdir()
    with pytest.raises(UserError, match="missing test_lmdb/data.mdb .an incomplete unzip"):
        load_ood("lsun", data_root=tmp_path)
    write_lsun(tmp_path / "root" / "lsun")
    with pytest.raises(UserError, match="PATH is the data root; pass lsun:PATH/lsun"):
        load_ood("lsun", str(tmp_path / "root"))


def test_corrupt_and_empty_databases(tmp_path):
    db = tmp_path / "bad" / "test_lmdb"
    db.mkdir(parents=True)
    (db / "data.mdb").write_bytes(b"\x00" * 10_000)
    with pytest.raises(UserError, match="does not open as an LMDB database") as e:
        load_ood("lsun", str(tmp_path / "bad"))
    assert "Expected layout" in str(e.value)
    (db / "data.mdb").write_bytes(b"")
    with pytest.raises(UserError, match="does not open as an LMDB database"):
        load_ood("lsun", str(tmp_path / "bad"))
    write_lsun(tmp_path / "empty", {})
    with pytest.raises(UserError, match="the LMDB database test_lmdb/ holds no images"):
        load_ood("lsun", str(tmp_path / "empty"))


def test_unreadable_value_is_replaced_and_reported(tmp_path):
    values = {b"a": _encoded(50, 40, "RGB", "JPEG", 1), b"b": b"not an image"}
    values[b"c"] = _encoded(40, 60, "RGB", "WEBP", 2)
    write_lsun(tmp_path, values)
    lsun = load_ood("lsun", str(tmp_path))
    batch = lsun.get_batch(torch.tensor([0, 1, 2]))
    assert torch.equal(batch[1], batch[2])  # the next readable item
    assert lsun.skipped == ["b"] and "cannot identify image" in lsun.skip_reasons["b"]
    write_lsun(tmp_path / "none", {b"x": b"junk", b"y": b""})
    with pytest.raises(UserError, match="none of the 2 images in the LMDB database"):
        load_ood("lsun", str(tmp_path / "none")).get_batch(torch.tensor([0]))


def test_workers_and_pickling_read_the_same_images(tmp_path):
    write_lsun(tmp_path)
    lsun = load_ood("lsun", str(tmp_path))
    keys = [torch.tensor([3, 1]), torch.tensor([0, 4, 2])]
    direct = [lsun.get_batch(k) for k in keys]
    copy = pickle.loads(pickle.dumps(lsun))  # as a spawned worker gets it
    assert torch.equal(copy.get_batch(keys[1]), direct[1])
    assert len(load_ood("lsun", str(tmp_path / "test_lmdb"))) == len(IMAGES)  # opened once
    decoded = list(loader.batches(lsun, keys, workers=2))  # forked workers
    assert all(torch.equal(a, b) for a, b in zip(decoded, direct, strict=True))


def test_missing_lmdb_names_the_install_command(tmp_path, monkeypatch):
    write_lsun(tmp_path)
    monkeypatch.setitem(sys.modules, "lmdb", None)  # import lmdb now fails
    with pytest.raises(UserError) as e:
        load_ood("lsun", str(tmp_path))
    assert "needs the lmdb package" in str(e.value)
    assert "pip install 'bgresample[lsun]'" in str(e.value) and "pip install lmdb" in str(e.value)
    with pytest.raises(UserError, match="ODIN"):  # the layout is checked first
        (tmp_path / "odin").mkdir()
        Image.new("RGB", (32, 32)).save(tmp_path / "odin" / "0.png")
        load_ood("lsun", str(tmp_path / "odin"))


def test_datasets_command_lists_lsun_and_lsun_crop(tmp_path, capsys):
    write_lsun(tmp_path / "lsun")
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"[found  ] lsun           ood                {tmp_path / 'lsun'}" in out
    assert f"[missing] lsun-crop      ood                {tmp_path / 'LSUN'}" in out
    assert "PATH/test_lmdb/data.mdb" in out and "LSUN (crop) test images" in out
