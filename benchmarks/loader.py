"""Decoding a folder pool (JPEG files) for training: batches per second read in the main
process vs decoded ahead in DataLoader worker processes (``data.workers``).

    .venv/bin/python benchmarks/loader.py [--files 2000] [--workers 2] [--batch 128]

Writes ``--files`` JPEG images of random sizes (64-160 pixels a side, as crawled thumbnails are)
to a temporary folder, then reads the same background batches (uniform draws, as fine-tuning
does) through ``Accel.batches`` with 0 and ``--workers`` workers, alternating, and with a
simulated model step of ``--step-ms`` per batch (the time the workers can hide decoding in).
Ends with one JSON line (keys ``inline_batches_per_s``, ``workers_batches_per_s``, ``speedup``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common as C
import numpy as np
from PIL import Image

from bgresample.data.pools import FolderImages
from bgresample.rng import Stream
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import uniform_batch


def write_pool(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(64, 161, 2))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i:06d}.jpg", quality=90)


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=20, help="batches per timed pass")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--step-ms", type=float, default=50.0, help="simulated model step per batch")
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        write_pool(Path(tmp), args.files)
        pool = FolderImages(tmp)

        def run(workers: int, rep: int) -> None:
            accel = Accel(device=device, workers=workers)
            keys = (
                uniform_batch(len(pool), args.batch, rep, Stream.BACKGROUND, s)
                for s in range(args.batches)
            )
            for raw in accel.batches(pool, keys):
                accel.ready(raw)
                time.sleep(args.step_ms / 1e3)  # the model's step, which the workers overlap

        times: dict[str, list[float]] = {"inline": [], "workers": []}
        for rep in range(args.reps):
            for name, workers in (("inline", 0), ("workers", args.workers)):
                t0 = time.perf_counter()
                run(workers, rep)
                times[name].append(time.perf_counter() - t0)
    rate = {k: args.batches / C.median(v) for k, v in times.items()}
    print(
        f"{args.files} JPEG files, batch {args.batch}, {args.batches} batches per pass, "
        f"simulated step {args.step_ms} ms, {args.reps} passes each"
    )
    for k, v in rate.items():
        print(f"  {k:8s} {v:7.2f} batches/s ({v * args.batch:8.0f} images/s)")
    result: dict[str, object] = {
        "benchmark": "loader",
        "files": args.files,
        "workers": args.workers,
        "batch": args.batch,
        "step_ms": args.step_ms,
        "inline_batches_per_s": round(rate["inline"], 3),
        "workers_batches_per_s": round(rate["workers"], 3),
        "speedup": round(C.paired_ratio(times, "inline", "workers"), 3),
    }
    print(f"  speedup  {result['speedup']:.2f}x")
    result.update(C.machine(device))
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
