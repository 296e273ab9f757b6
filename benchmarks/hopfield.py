"""Hopfield Boosting's Delta score at the MNIST benchmark's scale: ``scores.hopfield.hopfield``
(float32, patterns normalised once, beta folded into the queries, memory sizes counted) against
a direct float64 evaluation of the formula Delta = lme(beta, X^T xi) - lme(beta, O^T xi) that
normalises the patterns per chunk and counts each memory's finite terms (what the score did
before it was rewritten), both over the same queries and stored patterns.

    .venv/bin/python benchmarks/hopfield.py [--queries 4096] [--patterns 60000] [--dim 128]
        [--beta 8] [--device cpu|cuda] [--threads 1]

``--patterns`` is the size of each memory (the MNIST run stores 60,000 ID and 60,000 auxiliary
patterns); ``max_abs_diff`` is the largest difference between the two Delta vectors.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse

import _common as C
import torch
import torch.nn.functional as F
from torch import nn

from bgresample.scores.hopfield import HopfieldState, hopfield


def direct_delta(q: torch.Tensor, x: torch.Tensor, o: torch.Tensor, beta: float, chunk: int):
    """Delta in float64 straight from its definition, ``chunk`` queries at a time."""
    out = []
    for i in range(0, len(q), chunk):
        qc = F.normalize(q[i : i + chunk].double(), dim=1)
        parts = []
        for mem in (x, o):
            s = qc @ F.normalize(mem.double(), dim=1).T
            n = torch.isfinite(s).sum(-1).double()
            parts.append((torch.logsumexp(beta * s, dim=-1) - n.log()) / beta)
        out.append(parts[0] - parts[1])
    return torch.cat(out)


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--queries", type=int, default=4096)
    p.add_argument("--patterns", type=int, default=60_000, help="size of each memory")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--beta", type=float, default=8.0)
    p.add_argument("--reps", type=int, default=3)
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(args.queries, args.dim, generator=gen).to(device)
    x = torch.randn(args.patterns, args.dim, generator=gen).to(device)
    o = torch.randn(args.patterns, args.dim, generator=gen).to(device)
    state = HopfieldState(
        nn.Identity(), F.normalize(x, dim=1), F.normalize(o, dim=1), float(args.beta)
    )
    results: dict[str, torch.Tensor] = {}

    def score() -> None:
        results["score"] = hopfield(q, state)

    def direct() -> None:
        results["direct"] = direct_delta(q, x, o, args.beta, chunk=256)

    print(
        f"device {device}, threads {torch.get_num_threads()}, {args.queries} queries against "
        f"2 x {args.patterns} patterns of dim {args.dim}, beta {args.beta}"
    )
    times = C.interleaved({"score": score, "direct": direct}, args.reps, device, warmup=1)
    diff = (results["score"].double() - results["direct"]).abs().max().item()
    result: dict[str, object] = {
        "benchmark": "hopfield",
        "queries": args.queries,
        "patterns": args.patterns,
        "score_s": round(C.median(times["score"]), 3),
        "direct_s": round(C.median(times["direct"]), 3),
        "direct_over_score": round(C.paired_ratio(times, "direct", "score"), 2),
        "max_abs_diff": diff,
    }
    print(
        f"  score {result['score_s']} s, direct float64 {result['direct_s']} s: "
        f"{result['direct_over_score']}x; max |difference| {diff:.2e}"
    )
    result.update(C.machine(device))
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
