"""Every loader on a small fixture written in the real on-disk format."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from bgresample.data.base import ImageArray
from bgresample.data.datasets import (
    ImageFolderID,
    TinyImageNet,
    load_cifar,
    load_cifar_split,
    load_svhn,
    load_tiny_imagenet,
)
from bgresample.data.loader import batches, decodes
from bgresample.data.pools import (
    IMAGENET32_BATCHES,
    FolderImages,
    Imagenet32,
    NpyImages,
    TinyImages,
    load_array_pickle,
)
from bgresample.errors import UserError


def _images(n: int, seed: int) -> np.ndarray:
    """n random uint8 images, N x 3 x 32 x 32."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def _pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


# --- CIFAR ---------------------------------------------------------------------------------


def write_cifar10(root: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """cifar-10-batches-py with 5 train batches of 2 images and a test batch of 3."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    train_x, test_x = _images(10, 0), _images(3, 1)
    train_y, test_y = [i % 10 for i in range(10)], [9, 0, 4]
    for k in range(5):
        rows = train_x[2 * k : 2 * k + 2].reshape(2, 3072)  # R, G, B planes per row
        _pickle(base / f"data_batch_{k + 1}", {"data": rows, "labels": train_y[2 * k : 2 * k + 2]})
    _pickle(base / "test_batch", {"data": test_x.reshape(3, 3072), "labels": test_y})
    _pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return train_x, train_y, test_x, test_y


def test_cifar10_pixels_labels_and_classes(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar10(tmp_path)
    train, test, classes = load_cifar(tmp_path, "cifar10", check_integrity=False)
    assert train.data.shape == (10, 3, 32, 32) and train.data.dtype == torch.uint8
    assert torch.equal(train.data, torch.from_numpy(train_x))
    assert torch.equal(test.data, torch.from_numpy(test_x))
    assert train.targets.tolist() == train_y and test.targets.tolist() == test_y
    assert train.targets.dtype == torch.int64 and classes == [f"c{i}" for i in range(10)]
    # the folder itself is accepted too
    only_test = load_cifar_split(tmp_path / "cifar-10-batches-py", check_integrity=False)
    assert torch.equal(only_test.data, torch.from_numpy(test_x))


def test_cifar_checks_md5_by_default(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(UserError, match="corrupted") as e:
        load_cifar(tmp_path, "cifar10")
    assert "cifar-10-batches-py" in str(e.value) and "--download" in str(e.value)


def test_cifar_missing_names_path_layout_and_download(tmp_path):
    with pytest.raises(UserError) as e:
        load_cifar(tmp_path, "cifar100", check_integrity=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar-100-python") in msg and "missing train, test, meta" in msg
    assert "cifar-100-python/{train, test, meta}" in msg and "--download" in msg


def test_cifar100_fine_labels(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    x = _images(4, 2)
    _pickle(base / "train", {"data": x.reshape(4, 3072), "fine_labels": [99, 0, 5, 7]})
    _pickle(base / "test", {"data": x[:1].reshape(1, 3072), "fine_labels": [3]})
    _pickle(base / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    train, test, classes = load_cifar(tmp_path, "cifar100", check_integrity=False)
    assert torch.equal(train.data, torch.from_numpy(x)) and train.targets.tolist() == [99, 0, 5, 7]
    assert test.targets.tolist() == [3] and len(classes) == 100 and train.num_classes == 100


# --- SVHN -------------------------------------------------------------------------------------


def test_svhn_mat_layout_and_label_ten_is_zero(tmp_path):
    x = _images(5, 3)
    y = np.array([[10], [1], [9], [10], [2]], dtype=np.uint8)
    for split in ("train", "test"):
        mat = {"X": x.transpose(2, 3, 1, 0), "y": y}  # 32 x 32 x 3 x N
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", mat)
    train, test, classes = load_svhn(tmp_path, check_integrity=False)
    assert torch.equal(train.data, torch.from_numpy(x)) and train.data.is_contiguous()
    assert train.targets.tolist() == [0, 1, 9, 0, 2] and classes == [str(d) for d in range(10)]
    assert len(test) == 5
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(UserError, match="missing test_32x32.mat") as e:
        load_svhn(tmp_path, check_integrity=False)
    assert str(tmp_path) in str(e.value) and "--download" in str(e.value)


# --- Tiny ImageNet --------------------------------------------------------------------------


def write_tiny_imagenet(root: Path) -> dict[str, tuple[int, int, int]]:
    """A 2-class tiny-imagenet-200 tree of constant-colour 64x64 images; colour per file."""
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("n02\nn01\n")  # unsorted, as the real file
    colours = {}
    for c, wnid in enumerate(("n01", "n02")):
        (base / "train" / wnid / "images").mkdir(parents=True)
        for k in range(2):
            colours[f"{wnid}_{k}"] = (10 * c + k, 100 + k, 200 - c)
            img = Image.new("RGB", (64, 64), colours[f"{wnid}_{k}"])
            img.save(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", format="PNG")
    lines = []
    for k, wnid in enumerate(("n02", "n01", "n02")):
        colours[f"val_{k}"] = (k, 2 * k, 3 * k)
        Image.new("RGB", (64, 64), colours[f"val_{k}"]).save(
            base / "val" / "images" / f"val_{k}.JPEG", format="PNG"
        )
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return colours


def test_tiny_imagenet_splits_labels_and_resize(tmp_path):
    colours = write_tiny_imagenet(tmp_path)
    train, test, classes = load_tiny_imagenet(tmp_path)
    assert classes == ["n01", "n02"]
    assert train.data.shape == (4, 3, 32, 32) and train.targets.tolist() == [0, 0, 1, 1]
    assert test.targets.tolist() == [1, 0, 1]
    for i, key in enumerate(["n01_0", "n01_1", "n02_0", "n02_1"]):
        assert train.data[i, :, 5, 7].tolist() == list(colours[key])
    assert test.data[2, :, 31, 0].tolist() == list(colours["val_2"])


def test_tiny_imagenet_dataset_applies_transforms(tmp_path):
    write_tiny_imagenet(tmp_path)
    ds = TinyImageNet(
        tmp_path / "tiny-imagenet-200",
        "val",
        transform=lambda img: torch.from_numpy(np.asarray(img).copy()),
        target_transform=lambda y: y + 100,
    )
    img, target = ds[1]
    assert len(ds) == 3 and img.shape == (32, 32, 3) and target == 100
    plain, _ = TinyImageNet(tmp_path, "train")[0]
    assert plain.size == (32, 32) and plain.mode == "RGB"


def test_tiny_imagenet_errors(tmp_path):
    with pytest.raises(UserError, match="cs231n.stanford.edu/tiny-imagenet-200.zip"):
        TinyImageNet(tmp_path, download=True)
    with pytest.raises(UserError, match="missing wnids.txt") as e:
        TinyImageNet(tmp_path)
    assert str(tmp_path / "tiny-imagenet-200") in str(e.value) and "val_annotations" in str(e.value)
    write_tiny_imagenet(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_1.JPEG").unlink()
    with pytest.raises(UserError, match="missing val/images/val_1.JPEG"):
        TinyImageNet(tmp_path, "val")


# --- image folders ----------------------------------------------------------------------------


def test_imagefolder_id_labels_from_sorted_folders(tmp_path):
    for split, n in (("train", 2), ("val", 1)):
        for c, name in enumerate(("dog", "cat")):
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(n):
                Image.new("RGB", (32, 48), (c, k, 7)).save(tmp_path / split / name / f"{k}.png")
    train, test, classes = ImageFolderID(tmp_path).load()
    assert classes == ["cat", "dog"]
    assert train.targets.tolist() == [0, 0, 1, 1] and test.targets.tolist() == [0, 1]
    assert train.data[2, :, 0, 0].tolist() == [0, 0, 7]  # dog has colour c = 0
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(UserError, match=r"only in val: \['bird'\]") as e:
        ImageFolderID(tmp_path)
    assert "PATH/train/<class>" in str(e.value) and str(tmp_path) in str(e.value)


# --- .npy / .npz ------------------------------------------------------------------------------


def test_npy_both_layouts_memory_mapped_and_npz(tmp_path):
    x = _images(6, 4)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    np.save(tmp_path / "nchw.npy", x)
    np.savez(tmp_path / "one.npz", images=x)
    idx = torch.tensor([5, 0, 3, 3])
    for name in ("nhwc.npy", "nchw.npy", "one.npz"):
        pool = NpyImages(tmp_path / name)
        assert len(pool) == 6 and pool.family is None and not pool.normalized
        assert torch.equal(pool.get_batch(idx), torch.from_numpy(x[[5, 0, 3, 3]])), name
    assert isinstance(NpyImages(tmp_path / "nhwc.npy")._array, np.memmap)
    with pytest.raises(IndexError):
        NpyImages(tmp_path / "nchw.npy").get_batch(torch.tensor([6]))


def test_npy_shape_dtype_and_missing_errors(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((2, 32, 32, 3), np.float32))
    np.save(tmp_path / "s.npy", np.zeros((2, 64, 64, 3), np.uint8))
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    for name, match in (("f.npy", "float32"), ("s.npy", "64, 64"), ("two.npz", "2 arrays")):
        with pytest.raises(UserError, match=match) as e:
            NpyImages(tmp_path / name)
        assert "N x 32 x 32 x 3" in str(e.value) and name in str(e.value)
    with pytest.raises(UserError, match="file not found"):
        NpyImages(tmp_path / "none.npy")


def test_npy_that_is_not_an_array_file_says_so_and_never_suggests_a_pickle(tmp_path):
    (tmp_path / "text.npy").write_text("not an array\n")
    (tmp_path / "text.npz").write_text("not a zip\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = (
        ("text.npy", "not a NumPy .npy file"),
        ("text.npz", "not a NumPy .npz file"),
        ("objects.npy", "Python objects"),
    )
    for name, match in cases:
        with pytest.raises(UserError, match=match) as e:
            NpyImages(tmp_path / name)
        assert "allow_pickle" not in str(e.value) and "N x 32 x 32 x 3" in str(e.value)


# --- 80 Million Tiny Images -------------------------------------------------------------------


def write_tiny_images(path: Path, n: int) -> np.ndarray:
    """n records in column-major order; returns the images as N x 3 x 32 x 32."""
    x = _images(n, 5)
    hwc = x.transpose(0, 2, 3, 1)
    # pixel [h, w, c] at byte h + 32 w + 1024 c
    records = np.stack([np.ravel(img, order="F") for img in hwc])
    assert records[0, 3 + 32 * 5 + 1024 * 2] == hwc[0, 3, 5, 2]
    path.write_bytes(records.tobytes())
    return x


def test_tiny_images_column_major_records_and_exclusion(tmp_path):
    x = write_tiny_images(tmp_path / "tiny_images.bin", 7)
    with pytest.raises(UserError, match="80mn_cifar_idxs.txt not found"):
        TinyImages(tmp_path / "tiny_images.bin")  # no exclusion file beside it
    pool = TinyImages(tmp_path / "tiny_images.bin", allow_cifar_overlap=True)
    assert len(pool) == 7 and pool.family is None and pool.source is None
    assert torch.equal(pool.get_batch(torch.arange(7)), torch.from_numpy(x))

    (tmp_path / "80mn_cifar_idxs.txt").write_text("3\n1\n\n6\n3\n")  # 1-based, with a duplicate
    pool = TinyImages(tmp_path)  # the folder works, "auto" finds the list
    assert len(pool) == 4 and pool.excluded.tolist() == [0, 2, 5]
    assert pool.record_index(torch.arange(4)).tolist() == [1, 3, 4, 6]
    assert torch.equal(pool.get_batch(torch.tensor([3, 0, 2])), torch.from_numpy(x[[6, 1, 4]]))
    assert len(TinyImages(tmp_path / "tiny_images.bin", exclude=None)) == 7


def test_tiny_images_bad_exclusion_and_truncated_file(tmp_path):
    write_tiny_images(tmp_path / "tiny_images.bin", 4)
    (tmp_path / "80mn_cifar_idxs.txt").write_text("1\n5\n")
    with pytest.raises(UserError, match="line 2: '5'") as e:
        TinyImages(tmp_path / "tiny_images.bin")
    assert "80mn_cifar_idxs.txt" in str(e.value) and "1..4" in str(e.value)
    other = tmp_path / "other.txt"
    other.write_text("0\n")
    with pytest.raises(UserError, match="line 1: '0'"):
        TinyImages(tmp_path / "tiny_images.bin", exclude=other)

    with open(tmp_path / "tiny_images.bin", "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(UserError, match="truncated") as e:
        TinyImages(tmp_path / "tiny_images.bin", exclude=None)
    assert "12,388 bytes" in str(e.value) and "3072 bytes" in str(e.value)
    with pytest.raises(UserError, match="file not found"):
        TinyImages(tmp_path / "missing.bin")


# --- Imagenet32 -------------------------------------------------------------------------------


def write_imagenet32(root: Path) -> tuple[np.ndarray, list[int]]:
    """The 10 pickled train batches, 1 to 3 images each."""
    root.mkdir(parents=True, exist_ok=True)
    x, labels = [], []
    for k, name in enumerate(IMAGENET32_BATCHES):
        n = 1 + k % 3
        imgs = _images(n, 10 + k)
        y = [1 + (7 * k + j) % 1000 for j in range(n)]
        data = imgs.reshape(n, 3072)  # R plane, G plane, B plane, each row-major
        _pickle(root / name, {"data": data, "labels": y, "mean": data.mean(0)})
        x.append(imgs)
        labels += y
    return np.concatenate(x), labels


def test_imagenet32_planes_labels_and_cache(tmp_path):
    x, labels = write_imagenet32(tmp_path / "Imagenet32_train")
    pool = Imagenet32(tmp_path / "Imagenet32_train")
    assert len(pool) == len(x) == 19
    assert torch.equal(pool.get_batch(torch.arange(19)), torch.from_numpy(x))
    r, g, b = (x[7].reshape(3, -1)[c] for c in range(3))
    assert pool.get_batch(torch.tensor([7]))[0, 1].reshape(-1).tolist() == g.tolist()
    assert (r != g).any() and (g != b).any()
    assert pool.family == [f"class_{v}" for v in labels] and pool.source is None
    cache = tmp_path / "Imagenet32_train" / "imagenet32_train.npy"
    assert np.load(cache, mmap_mode="r").shape == (19, 3, 32, 32)
    assert not [p for p in cache.parent.iterdir() if "tmp" in p.name]
    for name in IMAGENET32_BATCHES:  # the cache alone is enough from now on
        (tmp_path / "Imagenet32_train" / name).unlink()
    again = Imagenet32(tmp_path / "Imagenet32_train")
    assert torch.equal(again.get_batch(torch.tensor([18, 0])), torch.from_numpy(x[[18, 0]]))


def test_imagenet32_cache_dir_and_missing_batches(tmp_path):
    write_imagenet32(tmp_path / "in")
    Imagenet32(tmp_path / "in", cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "imagenet32_train.npy").is_file()
    (tmp_path / "in" / "train_data_batch_10").unlink()
    with pytest.raises(UserError, match="missing train_data_batch_10") as e:
        Imagenet32(tmp_path / "in")
    assert str(tmp_path / "in") in str(e.value) and "train_data_batch_1 .." in str(e.value)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_imagenet32_refuses_a_malicious_pickle(tmp_path):
    write_imagenet32(tmp_path)
    marker = tmp_path / "pwned"
    _pickle(tmp_path / "train_data_batch_3", {"data": _Evil(marker), "labels": [1]})
    with pytest.raises(UserError, match="refusing to load") as e:
        Imagenet32(tmp_path)
    assert "train_data_batch_3" in str(e.value)
    assert not marker.exists()
    assert not (tmp_path / "imagenet32_train.npy").exists()
    _pickle(tmp_path / "evil", (eval, ("1 + 1",)))
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        load_array_pickle(tmp_path / "evil")


def test_restricted_unpickler_reads_every_numpy_protocol(tmp_path):
    d = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], "m": np.float64(2)}
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        with open(tmp_path / "p", "wb") as f:
            pickle.dump(d, f, protocol=proto)
        out = load_array_pickle(tmp_path / "p")
        assert np.array_equal(out["data"], d["data"]) and out["labels"] == [1, 2], proto
        assert out["m"] == 2.0


# --- folders of image files -------------------------------------------------------------------


def write_folder(root: Path) -> dict[str, np.ndarray]:
    """Images of every PIL mode plus three unreadable files; returns expected C x H x W pixels."""
    rng = np.random.default_rng(6)
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    expected = {}
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(grey).save(root / "a" / "1_grey.png")
    expected["a/1_grey.png"] = np.stack([grey] * 3)
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(root / "a" / "2_rgba.png")
    expected["a/2_rgba.png"] = rgba[..., :3].transpose(2, 0, 1)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    idx = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    p = Image.frombytes("P", (32, 32), idx.tobytes())
    p.putpalette(palette.reshape(-1).tolist())
    p.save(root / "a" / "3_palette.png")
    expected["a/3_palette.png"] = palette[idx].transpose(2, 0, 1)
    deep = rng.integers(0, 256, (32, 32)).astype(np.uint16) * 257
    Image.fromarray(deep).save(root / "a" / "4_deep.png")
    expected["a/4_deep.png"] = np.stack([deep // 257] * 3).astype(np.uint8)
    Image.new("RGB", (64, 96), (9, 8, 7)).save(root / "b" / "5_big.jpg", quality=100)
    expected["b/5_big.jpg"] = np.broadcast_to(
        np.array([9, 8, 7], np.uint8)[:, None, None], (3, 32, 32)
    )
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(root / "b" / "6_truncated.jpg")
    data = (root / "b" / "6_truncated.jpg").read_bytes()
    (root / "b" / "6_truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "b" / "7_empty.jpg").write_bytes(b"")
    (root / "b" / "8_text.png").write_text("this is not a png\n")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(root / "top.png")
    expected["top.png"] = np.broadcast_to(np.array([1, 2, 3], np.uint8)[:, None, None], (3, 32, 32))
    (root / "b" / "notes.txt").write_text("ignored: not an image name")
    return expected


def test_folder_images_modes_provenance_and_skipping(tmp_path):
    expected = write_folder(tmp_path)
    pool = FolderImages(tmp_path, name="mixed")
    assert pool.source == [
        "a/1_grey.png", "a/2_rgba.png", "a/3_palette.png", "a/4_deep.png", "b/5_big.jpg",
        "b/6_truncated.jpg", "b/7_empty.jpg", "b/8_text.png", "top.png",
    ]  # fmt: skip
    assert pool.family == ["a"] * 4 + ["b"] * 4 + [""] and len(pool) == 9
    batch = pool.get_batch(torch.arange(9))
    assert batch.shape == (9, 3, 32, 32) and batch.dtype == torch.uint8
    for i, rel in enumerate(pool.source):
        if rel in expected:
            got, want = batch[i].numpy().astype(int), expected[rel].astype(int)
            tol = 1 if rel.endswith(".jpg") else 0
            assert np.abs(got - want).max() <= tol, rel
    # the three unreadable files are replaced by the next readable item: top.png
    for i in (5, 6, 7):
        assert torch.equal(batch[i], batch[8])
    bad = [str(tmp_path / "b" / n) for n in ("6_truncated.jpg", "7_empty.jpg", "8_text.png")]
    assert pool.skipped == bad
    pool.get_batch(torch.tensor([7, 6, 5]))
    assert pool.skipped == bad  # counted once


def test_folder_images_wraps_around_and_errors(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    Image.new("RGB", (32, 32), (4, 5, 6)).save(tmp_path / "a.png")
    pool = FolderImages(tmp_path)
    assert pool.get_batch(torch.tensor([1]))[0, :, 0, 0].tolist() == [4, 5, 6]
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 2"):
        FolderImages(tmp_path).get_batch(torch.tensor([0]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no image files") as e:
        FolderImages(empty)
    assert str(empty) in str(e.value) and ".png" in str(e.value)
    with pytest.raises(UserError, match="folder not found"):
        FolderImages(tmp_path / "nope")


# --- reading ahead in DataLoader worker processes ---------------------------------------------


def test_worker_batches_equal_inline_and_report_unreadable_files(tmp_path):
    write_folder(tmp_path)
    keys = [torch.tensor([0, 5, 8]), torch.tensor([7, 1]), torch.tensor([6, 6, 2, 3, 4])]
    inline_pool = FolderImages(tmp_path)
    inline = list(batches(inline_pool, keys, workers=0))
    pool = FolderImages(tmp_path)
    assert decodes(pool)
    ahead = list(batches(pool, iter(keys), workers=2, prefetch=1))
    assert len(ahead) == len(keys)
    for a, b in zip(ahead, inline, strict=True):
        assert torch.equal(a, b)
    # The unreadable files met in the workers are recorded in this process, each once.
    assert sorted(pool.skipped) == sorted(inline_pool.skipped)
    assert len(pool.skipped) == 3


def test_arrays_are_read_in_this_process():
    pool = ImageArray(torch.arange(5 * 3 * 32 * 32).reshape(5, 3, 32, 32).to(torch.uint8))
    assert not decodes(pool)
    (x,) = batches(pool, [torch.tensor([4, 0])], workers=2)
    assert torch.equal(x, pool.data[[4, 0]])
