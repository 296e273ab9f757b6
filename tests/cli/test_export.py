"""`bgresample export`: a background subset written as .npy / PNG folder and read back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bgresample import BackgroundResampler
from bgresample.cli import build_parser, main, resolve_config
from bgresample.data.base import ImageArray
from bgresample.data.export import export_pool, sources_at
from bgresample.data.kinds import load_background
from bgresample.data.pools import pool_signature
from bgresample.engine.benchmark import load_benchmark
from bgresample.resampling import read_manifest, write_manifest


@pytest.fixture(scope="module")
def tiny(tiny: list[str]) -> list[str]:
    """The shared tiny arguments without --device, which `export` (it runs no model) does not
    take."""
    i = tiny.index("--device")
    return [*tiny[:i], *tiny[i + 2 :]]


@pytest.fixture(scope="module")
def pool(tiny):
    """The training view of the tiny pool, resolved as every command resolves it."""
    args = build_parser().parse_args(["export", "--out", "x", "--subset", "m.csv", *tiny])
    return load_benchmark(resolve_config(args)).pool


@pytest.fixture(scope="module")
def selected(tmp_path_factory, tiny):
    """A subset manifest written by `bgresample select`."""
    out = tmp_path_factory.mktemp("sel")
    args = ["select", "--method", "random", "--gamma", "0.05", "--out", str(out), *tiny]
    assert main(args) == 0
    return out / "subset_random.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_export_npy_round_trip(pool, selected, tiny, tmp_path):
    out = tmp_path / "ex"
    args = ["export", "--subset", str(selected), "--format", "npy", "--batch-size", "7"]
    assert main([*args, "--out", str(out), *tiny]) == 0
    idx = read_manifest(selected)["indices"]
    raw = np.load(out / "images.npy")  # as Outlier Exposure code loads 300K_random_images.npy
    assert raw.dtype == np.uint8 and raw.shape == (len(idx), 32, 32, 3)
    back = load_background("npy", out / "images.npy")
    assert len(back) == len(idx)
    assert torch.equal(back.get_batch(torch.arange(len(idx))), pool.get_batch(idx).cpu())
    rows = _rows(out / "export.csv")
    assert list(rows[0]) == ["export_row", "index", "weight", "family", "source", "file", "skipped"]
    assert [int(r["export_row"]) for r in rows] == list(range(len(idx)))
    assert [int(r["index"]) for r in rows] == idx.tolist()
    assert [r["family"] for r in rows] == [pool.family[i] for i in idx.tolist()]
    assert [r["source"] for r in rows] == [pool.source[i] for i in idx.tolist()]
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["count"] == len(idx) and summary["format"] == "npy"
    assert summary["pool_size"] == len(pool)
    assert (out / "meta.json").is_file() and (out / "config.yaml").is_file()
    assert not list(out.glob(".*tmp*"))


def test_export_folder_round_trip(pool, selected, tiny, tmp_path):
    out = tmp_path / "ex"
    args = ["export", "--subset", str(selected), "--format", "folder", "--batch-size", "5"]
    assert main([*args, "--out", str(out), *tiny]) == 0
    idx = read_manifest(selected)["indices"]
    back = load_background("folder", out / "images")
    assert len(back) == len(idx)
    rows = _rows(out / "export.csv")
    # export_row is the item's index when the folder is read back (sorted path order)
    assert [int(r["export_row"]) for r in rows] == list(range(len(idx)))
    assert [r["file"] for r in rows] == back.source
    assert sorted(int(r["index"]) for r in rows) == idx.tolist()
    pool_idx = torch.tensor([int(r["index"]) for r in rows])
    assert torch.equal(back.get_batch(torch.arange(len(rows))), pool.get_batch(pool_idx).cpu())
    for r in rows:  # one subfolder per family, files named by pool index
        assert r["file"] == f"{r['family']}/{int(r['index']):08d}.png"
        assert r["family"] == pool.family[int(r["index"])]
    assert back.family == [r["family"] for r in rows]
    assert not list(out.glob(".images*"))


def test_weights_of_another_pool_of_the_same_size_are_refused(pool, tiny, tmp_path, capsys):
    """A weights file keeps its pool's signature (size and sampled images): weights copied out
    of their run and read against another pool of as many items are refused; a file without
    one (written by your own loop) is taken."""
    n = len(pool)
    path = tmp_path / "w.safetensors"
    BackgroundResampler(n).save(path, {"pool": "v1:0123456789abcdef"})
    for command in (["export", "--top-k", "3"], ["select", "--method", "topk"]):
        args = [*command, "--weights", str(path), "--out", str(tmp_path / command[0]), *tiny]
        assert main(args) == 2
        assert "learned on another pool" in _err(capsys)
    # this pool's, none recorded, or one signed another way (another version): taken
    for info in ({"pool": pool_signature(pool)}, None, {"pool": "v0:0123"}):
        BackgroundResampler(n).save(path, info)
        out = tmp_path / f"ok{len(str(info))}"
        assert (
            main(["export", "--top-k", "3", "--weights", str(path), "--out", str(out), *tiny]) == 0
        )


def test_the_pool_signature_samples_in_range_at_any_size():
    """Integer sampling: a float32 linspace reached index n itself for ~37% of sizes past 2^24."""

    class Huge:
        def __len__(self) -> int:
            return 76_000_000

        def get_batch(self, idx: torch.Tensor) -> torch.Tensor:
            assert int(idx.max()) == len(self) - 1 and int(idx.min()) == 0 and len(idx) == 64
            return idx.view(-1, 1, 1, 1).to(torch.uint8)

    assert pool_signature(Huge()).startswith("v1:")


def test_export_top_k_by_weights(pool, tiny, tmp_path, capsys):
    n = len(pool)
    resampler = BackgroundResampler(n)
    state = resampler.state_dict()
    state["omega"] = torch.randn(n, generator=torch.Generator().manual_seed(3))
    resampler.load_state_dict(state)
    path = tmp_path / "weights.safetensors"
    resampler.save(path)
    w = BackgroundResampler.load(path).weights()
    out = tmp_path / "top"
    args = ["export", "--weights", str(path), "--top-k", "9", "--out", str(out), *tiny]
    assert main(args) == 0
    rows = _rows(out / "export.csv")
    top = torch.sort(w, descending=True, stable=True).indices[:9].sort().values
    assert [int(r["index"]) for r in rows] == top.tolist()
    assert [float(r["weight"]) for r in rows] == pytest.approx(w[top].tolist())
    back = load_background("npy", out / "images.npy")
    assert torch.equal(back.get_batch(torch.arange(9)), pool.get_batch(top).cpu())
    # --gamma: round(gamma N) items, the other format; the earlier images.npy is replaced
    args = ["export", "--weights", str(path), "--gamma", "0.02", "--format", "folder"]
    assert main([*args, "--out", str(out), "--overwrite", *tiny]) == 0
    assert len(_rows(out / "export.csv")) == round(0.02 * n)
    assert not (out / "images.npy").exists() and (out / "images").is_dir()
    capsys.readouterr()
    # too many items, and --top-k with a manifest
    args = ["export", "--weights", str(path), "--top-k", str(n + 1)]
    assert main([*args, "--out", str(tmp_path / "big"), *tiny]) == 2
    err = _err(capsys)
    assert f"1..{n}" in err and len(err.splitlines()) == 1
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, torch.tensor([0, 1]))
    args = ["export", "--subset", str(manifest), "--top-k", "3", "--out", str(tmp_path / "k")]
    assert main([*args, *tiny]) == 2
    assert "--top-k" in _err(capsys) and not (tmp_path / "k").exists()


def test_export_bad_manifest(pool, tiny, tmp_path, capsys):
    n = len(pool)
    manifest = tmp_path / "bad.csv"
    write_manifest(manifest, torch.tensor([0, 3, n + 5]))
    args = ["export", "--subset", str(manifest), "--out", str(tmp_path / "o"), *tiny]
    assert main(args) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1
    assert f"index {n + 5} is out of range 0..{n - 1}" in err and "hold-out" in err
    assert not (tmp_path / "o" / "images.npy").exists()
    # a manifest of another pool: the family recorded differs from the pool's
    other = next(f for f in sorted(set(pool.family)) if f != pool.family[0])
    write_manifest(manifest, torch.tensor([0]), family=[other])
    args = ["export", "--subset", str(manifest), "--out", str(tmp_path / "o2"), *tiny]
    assert main(args) == 2
    err = _err(capsys)
    assert "family" in err and len(err.splitlines()) == 1
    # a manifest chosen from an .npy pool of the same size: its sources (rows of that file) say so
    npy = tmp_path / "mine.npy"
    np.save(npy, np.zeros((n, 32, 32, 3), np.uint8))
    mine = load_benchmark(
        resolve_config(
            build_parser().parse_args(
                ["export", "--out", "x", "--subset", "m.csv", "--background", f"npy:{npy}", *tiny]
            )
        )
    ).pool
    assert len(mine) < n  # the hold-out is taken out of this pool too
    write_manifest(manifest, torch.tensor([2, 5]), source=sources_at(mine, torch.tensor([2, 5])))
    with open(manifest, newline="") as f:
        assert [r["source"] for r in csv.DictReader(f)] == ["mine.npy#2", "mine.npy#5"]
    for flags in ([], ["--background", f"npy:{npy}"]):
        args = ["export", "--subset", str(manifest), "--out", str(tmp_path / "o4"), *flags]
        assert main([*args, "--overwrite", *tiny]) == (2 if not flags else 0)
    err = _err(capsys)
    assert "index 2 has source 'mine.npy#2'" in err and len(err.splitlines()) == 1
    manifest.write_text("idx,w\n1,2\n")
    args = ["export", "--subset", str(manifest), "--out", str(tmp_path / "o3"), *tiny]
    assert main(args) == 2
    assert "header" in _err(capsys)


def test_export_out_handling(selected, tiny, tmp_path, capsys):
    out = tmp_path / "ex"
    args = ["export", "--subset", str(selected), *tiny]
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2  # a run is never clobbered silently
    assert "--overwrite" in _err(capsys)
    assert main([*args, "--out", str(out), "--format", "folder", "--overwrite"]) == 0
    assert (out / "images").is_dir() and not (out / "images.npy").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main([*args, "--out", str(foreign)]) == 2
    assert "not a bgresample run folder" in _err(capsys)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # no --out at all: argparse refuses
    with pytest.raises(SystemExit):
        main(args)


class _Failing(ImageArray):
    """A pool whose reads fail after the first chunk."""

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        if int(indices[0]) >= 4:
            raise OSError(5, "read error")
        return super().get_batch(indices)


@pytest.mark.parametrize("fmt", ["npy", "folder"])
def test_export_failure_leaves_nothing(fmt, tmp_path):
    data = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    ok = ImageArray(data, name="ok")
    done = export_pool(ok, torch.tensor([9, 2, 5]), tmp_path, fmt, chunk=2, quiet=True)
    back = load_background(fmt, done.path)
    got = back.get_batch(torch.arange(3))
    rows = _rows(done.manifest)
    want = data[torch.tensor([int(r["index"]) for r in rows])]
    assert torch.equal(got, want)
    assert [r["source"] for r in rows] == [f"ok#{r['index']}" for r in rows]
    before = sorted(p.name for p in tmp_path.iterdir())
    bad = _Failing(data, name="bad")
    with pytest.raises(OSError):
        export_pool(bad, torch.arange(8), tmp_path, fmt, chunk=4, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the earlier export is intact
    assert torch.equal(load_background(fmt, done.path).get_batch(torch.arange(3)), got)


# -- unreadable images (issue 22, item 7) ---------------------------------------------------------


def _folder_pool(root: Path, n: int, broken: set[int]) -> list[np.ndarray]:
    """``n`` distinct PNGs under ``root`` (files 000.png ...), those in ``broken`` truncated; the
    pixels of each readable one."""
    from PIL import Image

    root.mkdir(parents=True)
    pixels = []
    for i in range(n):
        img = np.full((32, 32, 3), (i * 9) % 256, np.uint8)
        Image.fromarray(img).save(root / f"{i:03d}.png")
        if i in broken:
            (root / f"{i:03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        pixels.append(img)
    return pixels


@pytest.mark.parametrize("fmt", ["npy", "folder"])
def test_unreadable_images_are_left_out_and_marked(tmp_path, fmt):
    from bgresample.data.pools import FolderImages

    pixels = _folder_pool(tmp_path / "pool", 12, broken={3, 7})
    pool = FolderImages(tmp_path / "pool")
    idx = torch.tensor([1, 3, 5, 7, 9])
    done = export_pool(pool, idx, tmp_path / "out", fmt, chunk=2, quiet=True)
    assert done.count == 3 and done.skipped == 2
    rows = _rows(done.manifest)
    assert [r["index"] for r in rows] == ["1", "3", "5", "7", "9"]
    assert [r["export_row"] for r in rows] == ["0", "", "1", "", "2"]
    assert [bool(r["skipped"]) for r in rows] == [False, True, False, True, False]
    assert all(r["skipped"].startswith("unreadable (") for r in rows if r["skipped"])
    back = load_background(fmt, done.path)
    got = back.get_batch(torch.arange(len(back))).permute(0, 2, 3, 1).numpy()
    assert len(back) == 3
    for k, i in enumerate([1, 5, 9]):  # each row holds its own image, never a neighbour's
        assert np.array_equal(got[k], pixels[i])


def test_export_summary_counts_unreadable_images(tmp_path, tiny, capsys):
    _folder_pool(tmp_path / "pool", 30, broken={2, 11, 20})
    sel = tmp_path / "sel"
    common = ["--pool", f"folder:{tmp_path / 'pool'}", *tiny]
    assert main(["select", "--method", "full", "--out", str(sel), *common]) == 0
    out = tmp_path / "ex"
    args = ["export", "--subset", str(sel / "subset_full.csv"), "--out", str(out), *common]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["skipped"] >= 2 and summary["count"] + summary["skipped"] == len(
        _rows(out / "export.csv")
    )
    assert f"{summary['skipped']} unreadable images left out" in printed
