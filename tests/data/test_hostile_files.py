"""Folders and files that broke the data layer (issue 16): link loops, non-UTF-8 file names,
folders of unreadable files read in workers, decompression bombs, Tiny Images without its
CIFAR exclusion list."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile

from bgresample.data.images import ImageTooLarge, list_images, load_image
from bgresample.data.kinds import load_background
from bgresample.data.loader import batches
from bgresample.data.pools import FolderImages, TinyImages
from bgresample.errors import UserError


class Overran(Exception):
    """Not an OSError (TimeoutError is one), which directory walks swallow."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (no timeout plugin here)."""

    def expired(signum, frame):
        raise Overran(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _png(path: Path, colour=(10, 20, 30), size=(32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


# --- links to folders -------------------------------------------------------------------------


def test_folder_linking_to_itself_twice_lists_each_image_once(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "sub" / "b.png")
    os.symlink(".", tmp_path / "l1")
    os.symlink(".", tmp_path / "l2")
    os.symlink("..", tmp_path / "sub" / "up")
    with deadline(30):
        assert _rel(list_images(tmp_path), tmp_path) == ["a.png", "sub/b.png"]
        pool = FolderImages(tmp_path)
    assert pool.source == ["a.png", "sub/b.png"] and pool.family == ["", "sub"]


def test_links_to_folders_outside_and_inside_are_followed_once(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(root / "a.png")
    _png(root / "sub" / "b.png")
    _png(outside / "c.png")
    _png(outside / "inner" / "d.png")
    os.symlink(outside, root / "ext")
    os.symlink(outside, root / "ext2")  # the same folder again
    os.symlink("sub", root / "alias")  # sorts before sub/: the real folder still wins
    os.symlink(root, outside / "back")  # a loop through the outside folder
    with deadline(30):
        found = _rel(list_images(root), root)
    assert found == ["a.png", "ext/c.png", "ext/inner/d.png", "sub/b.png"]
    assert _rel(list_images(root, recursive=False), root) == ["a.png"]


# --- file names that are not UTF-8 --------------------------------------------------------------


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


def _write_bytes_name(folder: Path, name: bytes, data: bytes) -> None:
    try:
        fd = os.open(os.path.join(os.fsencode(folder), name), os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:  # a file system that only takes UTF-8 names
        pytest.skip(f"cannot create a non-UTF-8 file name here: {e}")
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_non_utf8_names_give_printable_sources(tmp_path):
    _write_bytes_name(tmp_path, b"caf\xe9.png", _png_bytes((1, 2, 3)))
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"r\xe9p"))
    _write_bytes_name(tmp_path, b"r\xe9p/x.png", _png_bytes((4, 5, 6)))
    pool = FolderImages(tmp_path)
    assert pool.source == ["caf\\xe9.png", "r\\xe9p/x.png"] and pool.family == ["", "r\\xe9p"]
    for text in pool.source + pool.family:
        text.encode("utf-8")  # as written to CSV manifests and logs
    batch = pool.get_batch(torch.tensor([0, 1]))  # the files still open by their real names
    assert batch[0, :, 0, 0].tolist() == [1, 2, 3] and batch[1, :, 0, 0].tolist() == [4, 5, 6]
    assert pool.skipped == []


def test_unreadable_non_utf8_file_is_skipped_with_a_printable_path(tmp_path):
    _write_bytes_name(tmp_path, b"bad\xff.png", b"not a png")
    _png(tmp_path / "ok.png", (7, 8, 9))
    pool = FolderImages(tmp_path)
    assert pool.get_batch(torch.tensor([0]))[0, :, 0, 0].tolist() == [7, 8, 9]
    assert pool.skipped == [f"{tmp_path}/bad\\xff.png"]
    (why,) = pool.skip_reasons.values()
    "\n".join(pool.skipped + [why]).encode("utf-8")


# --- a folder of only unreadable files read in worker processes ---------------------------------


def test_all_unreadable_folder_in_workers_gives_one_clean_line(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_text("this is not a png\n")
    pool = FolderImages(tmp_path, name="textures")
    keys = [torch.tensor([0, 1]), torch.tensor([2])]
    with deadline(120), pytest.raises(UserError) as e:
        list(batches(pool, keys, workers=2, prefetch=1))
    msg = str(e.value)
    assert msg.startswith("textures: none of the 3 image files under") and "\n" not in msg
    assert "Traceback" not in msg and "Caught UserError" not in msg
    assert len(pool.skipped) == 3  # the files met in the worker are still recorded
    with pytest.raises(UserError) as inline:  # the same message without workers
        list(batches(FolderImages(tmp_path, name="textures"), keys, workers=0))
    assert str(inline.value) == msg


# --- decompression bombs ------------------------------------------------------------------------


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The (width, height) of every image PIL decodes, at the size it decodes it (PIL calls
    ``load`` again, as a no-op, in later operations: compare as a set)."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(self):
        sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


def test_huge_png_is_refused_without_decoding(tmp_path, decoded_sizes):
    Image.new("L", (5000, 5000), 200).save(tmp_path / "big.png")
    assert (tmp_path / "big.png").stat().st_size < 100_000  # a bomb: small on disk
    _png(tmp_path / "ok.png", (7, 8, 9))
    with pytest.raises(ImageTooLarge, match="5000 x 5000"):
        load_image(tmp_path / "big.png")
    assert decoded_sizes == []
    pool = FolderImages(tmp_path)
    assert pool.get_batch(torch.tensor([0]))[0, :, 0, 0].tolist() == [7, 8, 9]
    assert pool.skipped == [str(tmp_path / "big.png")]
    assert "5000 x 5000 pixels" in pool.skip_reasons[str(tmp_path / "big.png")]
    assert set(decoded_sizes) == {(32, 32)}  # ok.png only


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path, decoded_sizes):
    Image.new("RGB", (5000, 4800), (200, 100, 50)).save(tmp_path / "big.jpg", quality=95)
    out = load_image(tmp_path / "big.jpg")
    assert set(decoded_sizes) == {(625, 600)}  # 1/8 scale, never 24 MP
    assert out.shape == (3, 32, 32)
    assert (out.int() - torch.tensor([200, 100, 50])[:, None, None]).abs().max() <= 2


# --- Tiny Images without its CIFAR exclusion list ---------------------------------------------


def test_tiny_images_needs_the_cifar_exclusion_list(tmp_path):
    path = tmp_path / "tiny_images.bin"
    path.write_bytes(bytes(3 * 3072))
    with pytest.raises(UserError) as e:
        load_background("tinyimages", path)
    msg = str(e.value)
    assert "CIFAR-10/100" in msg and "80mn_cifar_idxs.txt beside tiny_images.bin" in msg
    assert "https://github.com/hendrycks/outlier-exposure" in msg and "\n" not in msg
    assert len(load_background("tinyimages", path, allow_cifar_overlap=True)) == 3
    assert len(TinyImages(path, exclude=None)) == 3  # an explicit "exclude nothing"
    (tmp_path / "80mn_cifar_idxs.txt").write_text("2\n")
    assert len(load_background("tinyimages", path)) == 2
