"""What recording a run's inputs costs (``meta.json``'s fingerprints, checked on ``--resume``):
fingerprinting a folder pool against listing it as ``FolderImages`` does when a command loads it,
and a large pool file (sampled) against reading it whole.

    .venv/bin/python benchmarks/provenance.py [--files 20000] [--file-mib 512]

Writes ``--files`` small PNGs in 100 subfolders and one ``--file-mib`` MiB file of random bytes to
a temporary folder, then times, interleaved: ``fingerprint(folder)`` vs ``FolderImages(folder)``,
and ``fingerprint(file)`` (16 sampled chunks) vs a full SHA-256 of the file. Ends with one JSON
line (``folder_ratio``: fingerprint / listing; ``file_ratio``: sampled / full hash).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from pathlib import Path

import _common as C
import numpy as np
from PIL import Image

from bgresample.data.pools import FolderImages
from bgresample.provenance import fingerprint


def write_folder(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"c{i % 100:02d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(sub / f"{i:06d}.png")


def full_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--file-mib", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder, big = Path(tmp) / "pool", Path(tmp) / "pool.bin"
        folder.mkdir()
        write_folder(folder, args.files)
        with open(big, "wb") as f:
            for _ in range(args.file_mib):
                f.write(os.urandom(1 << 20))
        times = C.interleaved(
            {
                "fingerprint_folder": lambda: fingerprint(folder),
                "list_folder": lambda: FolderImages(folder),
                "fingerprint_file": lambda: fingerprint(big),
                "full_hash_file": lambda: full_sha256(big),
            },
            args.reps,
            device,
        )
    result: dict[str, object] = {
        "benchmark": "provenance",
        "files": args.files,
        "file_mib": args.file_mib,
        **{f"{k}_s": round(C.median(v), 4) for k, v in times.items()},
        "folder_ratio": round(C.paired_ratio(times, "fingerprint_folder", "list_folder"), 3),
        "file_ratio": round(C.paired_ratio(times, "fingerprint_file", "full_hash_file"), 5),
        "machine": C.machine(device),
    }
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
