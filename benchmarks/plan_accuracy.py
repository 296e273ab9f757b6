"""How close ``bgresample plan`` comes to the run it plans: for each case (the embedded
``--quick`` run and the embedded default by default), run ``plan --json`` and then the run itself
with the same options, and print estimate / actual per stage (pre-training, Algorithm 1,
fine-tuning, evaluation) and in total, from the run's ``results.json`` ``timing_s``.

The run is timed by the engine, data loading and report writing outside the stages excluded, as
the plan excludes them. Run it with nothing else on the machine: both sides are timings.

    python benchmarks/plan_accuracy.py                   # quick and default (about 6 min, 2 cores)
    python benchmarks/plan_accuracy.py --case quick --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine

#: Each case: the options given to both ``plan`` and ``run``.
CASES = {
    "quick": ["--quick"],
    "default": [],
}
STAGES = ("pretrain", "resample", "finetune", "evaluate")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bgresample.cli", *args]


def estimate(options: list[str]) -> dict[str, float]:
    """Seconds per stage kind from ``plan --json``, and ``total``."""
    out = subprocess.run(
        _cli("plan", "--json", "--quiet", *options), check=True, capture_output=True, text=True
    )
    plan = json.loads(out.stdout)
    per: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    for stage in plan["stages"]:
        per[stage["stage"].split("[")[0]] += stage["seconds"]
    per["total"] = plan["total_seconds"]
    return per


def actual(options: list[str], folder: Path) -> dict[str, float]:
    """Seconds per stage of a real run (``results.json`` ``timing_s``); ``total`` is their sum."""
    subprocess.run(_cli("run", "--out", str(folder), "--quiet", *options), check=True)
    timing = json.loads((folder / "results.json").read_text())["timing_s"]
    per = {k: float(timing.get(k, 0.0)) for k in STAGES}
    per["total"] = sum(per.values())
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="default: all")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    results = {}
    for case in args.case or list(CASES):
        t0 = time.perf_counter()
        est = estimate(CASES[case])
        plan_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            act = actual(CASES[case], Path(tmp) / "run")
        results[case] = {"estimate_s": est, "actual_s": act, "plan_wall_s": plan_s}
        print(f"\n{case}: plan took {plan_s:.1f} s")
        print(f"{'stage':<10} {'estimate':>10} {'actual':>10} {'ratio':>7}")
        for key in (*STAGES, "total"):
            if act[key] > 0 or est[key] > 0:
                ratio = est[key] / act[key] if act[key] > 0 else float("inf")
                print(f"{key:<10} {est[key]:>9.1f}s {act[key]:>9.1f}s {ratio:>7.2f}")
    if args.json:
        info = {"machine": machine(torch.device("cpu")), "cases": results}
        args.json.write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
