"""Pack the MNIST benchmark's built cache (the arrays `run --preset mnist` reads) into one xz tar
that a GPU machine without internet can receive: the device tool carries at most 64 MiB with
the working tree, and the sources (296 MB) or the uncompressed cache (211 MB) do not fit.

    .venv/bin/python benchmarks/mnist_carry.py [--data-root ROOT] [--out carry/mnist-cache.tar.xz]

Builds the cache first where it is missing (which needs the sources:
``bgresample datasets --download --preset mnist``). On the GPU machine,
``benchmarks/gpu_check.sh`` unpacks it into a fresh data root (``MNIST_CACHE``) and times
``bgresample plan`` and ``run`` with the preset there.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import lzma
import os
import subprocess
import tarfile
import time
from pathlib import Path

import _common as C

from bgresample.config import load_config
from bgresample.data.embedded import default_data_root
from bgresample.data.mnist_bench import cache_dirs, load_mnist_bench
from bgresample.engine.benchmark import mnist_config

#: What the device tool carries, working tree included.
CARRY_LIMIT = 64 * 2**20


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None, help="data root (default: BGRESAMPLE_DATA)")
    p.add_argument("--out", default="carry/mnist-cache.tar.xz")
    args = p.parse_args(argv)
    root = Path(args.data_root or default_data_root())
    seed, config = mnist_config(load_config(preset="mnist").data)
    load_mnist_bench(root, seed, config)  # builds the cache where it is missing
    folders = cache_dirs(root, seed, config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    part = out.with_name(out.name + ".part")
    with lzma.open(part, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for folder in folders:
            tar.add(folder, arcname=folder.relative_to(root).as_posix())
    os.replace(part, out)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], capture_output=True, check=True, text=True
    ).stdout.split("\0")
    tree = sum(os.path.getsize(f) for f in tracked if f and os.path.isfile(f))
    size = out.stat().st_size
    result: dict[str, object] = {
        "benchmark": "mnist_carry",
        "archive": str(out),
        "archive_bytes": size,
        "tracked_bytes": tree,
        "fits_carry": size + tree <= CARRY_LIMIT,
        "seconds": round(time.perf_counter() - t0, 1),
        "folders": [f.name for f in folders],
    }
    print(
        f"{out}: {size / 2**20:.1f} MiB (+ {tree / 2**20:.1f} MiB of tracked files; the carry "
        f"limit is {CARRY_LIMIT / 2**20:.0f} MiB) in {result['seconds']} s"
    )
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
