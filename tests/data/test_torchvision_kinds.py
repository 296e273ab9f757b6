"""textures (DTD) and places365 through torchvision's classes, on tiny trees in the real layouts:
file lists, the union of DTD's splits, decoding, the old folder forms, errors and --download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import DTD, Places365
from torchvision.datasets import dtd as tv_dtd
from torchvision.datasets import places365 as tv_places365

from bgresample.data import datasets as ds
from bgresample.data.images import load_image
from bgresample.data.kinds import KINDS, load_background, load_ood, status
from bgresample.data.pools import FolderImages
from bgresample.errors import UserError

# --- fixtures in torchvision's layouts ------------------------------------------------------------

#: DTD partition 1 (lines <category>/<file>): banded_0003 only in test1, dotted_0001 in two
#: splits (counted once); dotted_0009 is on disk but in no list of partition 1.
DTD_LISTS = {
    "train1.txt": ["banded/banded_0001.jpg", "dotted/dotted_0001.jpg"],
    "val1.txt": ["banded/banded_0002.jpg", "dotted/dotted_0001.jpg"],
    "test1.txt": ["banded/banded_0003.jpg"],
    "train2.txt": ["dotted/dotted_0009.jpg"],
}
DTD_IMAGES = sorted({f for k, v in DTD_LISTS.items() if k.endswith("1.txt") for f in v})
CATEGORIES = ["/a/airfield", "/b/bedroom", "/c/coast"]


def _colour(name: str) -> tuple[int, int, int]:
    """A distinct flat colour per file name (flat: JPEG keeps it to within a level or two)."""
    h = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    return (h * 37 % 200 + 20, h * 91 % 200 + 20, h * 53 % 200 + 20)


def _jpeg(path: Path, size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, _colour(path.name)).save(path, quality=95)


def write_dtd(data: Path) -> None:
    """``data`` as torchvision's DTD extracts it: dtd/images/<category>/ and dtd/labels/."""
    for rel in [*DTD_IMAGES, "dotted/dotted_0009.jpg"]:
        _jpeg(data / "images" / rel)
    (data / "labels").mkdir(parents=True)
    for name, lines in DTD_LISTS.items():
        (data / "labels" / name).write_text("".join(f"{line}\n" for line in lines))


def write_places365(root: Path) -> None:
    """``root`` as torchvision's Places365 (small=True) lays it out: the category list, and the
    val and train-standard file lists with their image folders."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ds.PLACES365_CATEGORIES).write_text(
        "".join(f"{c} {i}\n" for i, c in enumerate(CATEGORIES))
    )
    val = [(f"Places365_val_{k:08d}.jpg", k % 3) for k in (3, 1, 2)]
    (root / "places365_val.txt").write_text("".join(f"{f} {y}\n" for f, y in val))
    for f, _ in val:
        _jpeg(root / "val_256" / f, (256, 256))
    train = [(f"{c}/{k:08d}.jpg", i) for i, c in enumerate(CATEGORIES) for k in (1, 2)]
    (root / "places365_train_standard.txt").write_text("".join(f"{f} {y}\n" for f, y in train))
    for f, _ in train:
        _jpeg(root / "data_256_standard" / f.lstrip("/"), (256, 256))


@pytest.fixture
def dtd_root(tmp_path: Path) -> Path:
    write_dtd(tmp_path / "dtd" / "dtd")
    return tmp_path


@pytest.fixture
def places_root(tmp_path: Path) -> Path:
    write_places365(tmp_path / "places365")
    return tmp_path / "places365"


def _check_pixels(pool: FolderImages) -> None:
    batch = pool.get_batch(torch.arange(len(pool)))
    assert batch.shape == (len(pool), 3, 32, 32) and batch.dtype == torch.uint8
    for i, path in enumerate(pool.paths):
        want = torch.tensor(_colour(path.name), dtype=torch.int16)[:, None, None]
        assert (batch[i].to(torch.int16) - want).abs().max() <= 3, path
        assert torch.equal(batch[i], load_image(path))


# --- textures ------------------------------------------------------------------------------------


def test_textures_is_the_union_of_partition_1s_splits(dtd_root):
    tex = load_ood("textures", dtd_root)
    assert isinstance(tex, FolderImages) and tex.name == "textures"
    assert tex.source == DTD_IMAGES  # test1-only banded_0003 in, dotted_0001 once, 0009 out
    assert tex.family == ["banded"] * 3 + ["dotted"]
    assert tex.root == dtd_root / "dtd" / "dtd" / "images"
    _check_pixels(tex)
    union = set()
    for split in ds.DTD_SPLITS:
        union |= {Path(p) for p, _ in DTD(dtd_root, split=split, loader=Path)}
    assert set(tex.paths) == union


def test_textures_path_forms_and_data_root(dtd_root, tmp_path):
    forms = [dtd_root / "dtd", dtd_root / "dtd" / "dtd", dtd_root / "dtd" / "dtd" / "images"]
    for path in forms:
        assert load_ood("textures", path).source == DTD_IMAGES, path
    assert load_ood("textures", data_root=dtd_root).source == DTD_IMAGES
    rows = {r.kind: r for r in status(dtd_root)}
    assert rows["textures"].found and rows["textures"].path == dtd_root
    assert KINDS["textures"].default_subpath == ""
    (dtd_root / "dtd" / "dtd" / "labels" / "val1.txt").unlink()
    assert not {r.kind: r for r in status(dtd_root)}["textures"].found


def test_textures_old_images_folder_is_read_as_a_folder(tmp_path):
    old = tmp_path / "old" / "dtd"
    write_dtd(old)  # the tarball extracted as is: no torchvision dtd/dtd nesting
    tex = load_ood("textures", old / "images")
    assert tex.source == [*DTD_IMAGES, "dotted/dotted_0009.jpg"] and tex.name == "textures"


def test_textures_missing_files_say_what_and_how(dtd_root, tmp_path):
    with pytest.raises(UserError) as e:
        load_ood("textures", tmp_path / "empty")
    msg = str(e.value)
    assert msg.startswith("textures: missing dtd/dtd/images, dtd/dtd/labels/train1.txt")
    assert str(tmp_path / "empty") in msg and "Expected layout: ROOT/dtd/dtd/images" in msg
    assert "--download" in msg and "robots.ox.ac.uk" in msg

    labels = dtd_root / "dtd" / "dtd" / "labels"
    (labels / "test1.txt").rename(labels / "test1.bak")
    with pytest.raises(UserError, match=r"textures: missing dtd/dtd/labels/test1.txt \(") as e:
        load_ood("textures", dtd_root)
    assert "Where to get it" in str(e.value)
    (labels / "test1.bak").rename(labels / "test1.txt")

    (dtd_root / "dtd" / "dtd" / "images" / "banded" / "banded_0003.jpg").unlink()
    with pytest.raises(UserError, match="1 of the 4 listed image files are missing") as e:
        load_ood("textures", dtd_root)
    assert "banded_0003.jpg" in str(e.value) and "Expected layout" in str(e.value)

    (labels / "val1.txt").write_text("no-slash-here\n")
    with pytest.raises(UserError, match="textures: malformed files"):
        load_ood("textures", dtd_root)


def test_textures_download_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, **kwargs):
        calls.append((url, Path(download_root)))
        write_dtd(Path(download_root) / "dtd")  # the archive holds dtd/

    monkeypatch.setattr(tv_dtd, "download_and_extract_archive", fake_download)
    with pytest.raises(UserError, match="missing dtd/dtd/images"):
        load_ood("textures", tmp_path)
    assert calls == []
    assert load_ood("textures", tmp_path, download=True).source == DTD_IMAGES
    assert calls == [(DTD._URL, tmp_path / "dtd")]
    load_ood("textures", tmp_path, download=True)  # already there: not fetched again
    assert len(calls) == 1


@pytest.mark.parametrize("error", [OSError("no network"), RuntimeError("File not found")])
def test_textures_failed_download_is_a_user_error(tmp_path, monkeypatch, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(tv_dtd, "download_and_extract_archive", fail)
    with pytest.raises(UserError) as e:
        load_ood("textures", tmp_path, download=True)
    msg = str(e.value)
    assert msg.startswith(f"textures: download failed ({error}) ({tmp_path})")
    assert "Expected layout: ROOT/dtd/dtd/images" in msg and "robots.ox.ac.uk" in msg


# --- places365 -----------------------------------------------------------------------------------


def test_places365_val_is_the_ood_set(places_root):
    ood = load_ood("places365", places_root, check_integrity=False)
    assert isinstance(ood, FolderImages) and ood.name == "places365"
    names = [f"Places365_val_{k:08d}.jpg" for k in (3, 1, 2)]
    assert ood.source == names  # the file list's order
    assert ood.family == ["airfield", "bedroom", "coast"]  # labels 0, 1, 2
    _check_pixels(ood)
    tv = ds._without_md5(Places365)(places_root, split="val", small=True)
    assert ood.paths == [Path(f) for f, _ in tv.imgs] and tv.images_dir.endswith("val_256")


def test_places365_train_standard_is_the_background_pool(places_root):
    pool = load_background("places365", places_root, check_integrity=False)
    assert len(pool) == 6 and pool.root == places_root / "data_256_standard"
    assert pool.source[:2] == ["a/airfield/00000001.jpg", "a/airfield/00000002.jpg"]
    assert pool.family == ["airfield"] * 2 + ["bedroom"] * 2 + ["coast"] * 2
    _check_pixels(pool)
    tv = ds._without_md5(Places365)(places_root, split="train-standard", small=True)
    assert tv.images_dir.endswith("data_256_standard")


def test_places365_default_location_forms_and_md5(places_root):
    data_root = places_root.parent
    assert len(load_ood("places365", data_root=data_root, check_integrity=False)) == 3
    rows = {r.kind: r for r in status(data_root)}
    assert rows["places365"].found and rows["places365"].path == places_root
    # an image folder of the layout selects its split, for either role
    assert len(load_ood("places365", places_root / "data_256_standard", check_integrity=False)) == 6
    assert len(load_background("places365", places_root / "val_256", check_integrity=False)) == 3
    with pytest.raises(UserError, match="places365: corrupted files") as e:
        load_ood("places365", places_root)  # md5 sums checked by default
    assert "--download" in str(e.value)


def test_places365_old_val_256_folder_is_read_as_a_folder(tmp_path):
    folder = tmp_path / "copy" / "val_256"  # no lists beside it
    for k in range(4):
        _jpeg(folder / f"Places365_val_{k:08d}.jpg")
    pool = load_ood("places365", folder)
    assert len(pool) == 4 and pool.family == [""] * 4
    _check_pixels(pool)


def test_places365_missing_files_say_what_and_how(places_root):
    (places_root / "places365_val.txt").unlink()
    with pytest.raises(UserError) as e:
        load_ood("places365", places_root, check_integrity=False)
    msg = str(e.value)
    assert msg.startswith(f"places365: missing places365_val.txt ({places_root})")
    assert "Expected layout: PATH/categories_places365.txt" in msg
    assert "--download" in msg and "places2.csail.mit.edu" in msg
    assert not {r.kind: r for r in status(places_root.parent)}["places365"].found

    (places_root / "data_256_standard" / "c" / "coast" / "00000002.jpg").unlink()
    with pytest.raises(UserError, match="1 of the 6 listed image files are missing"):
        load_background("places365", places_root, check_integrity=False)
    (places_root / ds.PLACES365_CATEGORIES).unlink()
    with pytest.raises(UserError, match="missing categories_places365.txt"):
        load_background("places365", places_root, check_integrity=False)


def test_places365_missing_image_folder(tmp_path):
    write_places365(tmp_path)
    for f in (tmp_path / "val_256").iterdir():
        f.unlink()
    (tmp_path / "val_256").rmdir()
    with pytest.raises(UserError, match=r"places365: missing val_256/ \(") as e:
        load_ood("places365", tmp_path, check_integrity=False)
    assert "Where to get it" in str(e.value)


def test_places365_download_only_when_asked(tmp_path, monkeypatch):
    calls = []
    staged = tmp_path / "staged"
    write_places365(staged)

    def fake_download(url, download_root, **kwargs):
        name = url.rsplit("/", 1)[1]
        calls.append(name)
        root = Path(download_root)
        if name.startswith("filelist"):
            for f in (ds.PLACES365_CATEGORIES, "places365_val.txt"):
                (root / f).write_bytes((staged / f).read_bytes())
        else:
            (staged / "val_256").rename(root / "val_256")

    monkeypatch.setattr(tv_places365, "download_and_extract_archive", fake_download)
    root = tmp_path / "places365"
    root.mkdir()
    with pytest.raises(UserError, match="missing categories_places365.txt"):
        load_ood("places365", root, check_integrity=False)
    assert calls == []
    ood = load_ood("places365", root, download=True, check_integrity=False)
    assert len(ood) == 3 and calls == ["filelist_places365-standard.tar", "val_256.tar"]
    load_ood("places365", root, download=True, check_integrity=False)
    assert len(calls) == 2  # all there: nothing fetched


@pytest.mark.parametrize("error", [OSError("no network"), RuntimeError("File not found")])
def test_places365_failed_download_is_a_user_error(tmp_path, monkeypatch, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(tv_places365, "download_and_extract_archive", fail)
    for load in (load_ood, load_background):
        with pytest.raises(UserError) as e:
            load("places365", tmp_path, download=True)
        msg = str(e.value)
        assert msg.startswith(f"places365: download failed ({error}) ({tmp_path})")
        assert "Expected layout: PATH/categories_places365.txt" in msg
        assert "places2.csail.mit.edu" in msg


def test_file_names_are_torchvisions():
    """The names spelled out in datasets.py (read by ``status`` without torchvision) are those
    torchvision's classes read."""
    assert Places365._CATEGORIES_META[0] == ds.PLACES365_CATEGORIES
    for split, (file_list, _) in ds.PLACES365_FILES.items():
        assert Places365._FILE_LIST_META[split][0] == file_list
    assert set(ds.DTD_SPLITS) == {"train", "val", "test"}
