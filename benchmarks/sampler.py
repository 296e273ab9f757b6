"""Sampler and weight-step cost at a pool size: refresh, per-batch draw, memory, weight step.

    .venv/bin/python benchmarks/sampler.py --pool-size 80000000 [--device cuda] [--threads 1]

Measures, with the real ``BackgroundWeights`` / ``WeightedSampler`` (omega ~ N(0, 2^2), eps 0.5):

- refresh: ``sampler.refresh(weights.masses())``, what the engine does once per pool epoch
  (split into computing the masses and building the sampler);
- draw: one batch of 128 indices, interleaved with a flat float64 cdf (the previous sampler) and,
  where it is allowed (N <= 2^24), ``torch.multinomial``;
- memory: bytes per pool item held by the sampler, and the peak while refreshing (RSS on the CPU,
  the CUDA allocator's peak on a GPU);
- weight step: ``weights.ascent_step`` (fused) interleaved with the plain path
  ``grad_omega`` + ``torch.optim.SGD.step`` (+ the O(N) sums that ``ratios`` then recomputes)
  and, up to 20M items, the step as it was before (full-size float64 ``ratios`` and
  ``grad_omega``).

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import time

import _common as C
import torch
import torch.nn.functional as F

from bgresample.resampling import BackgroundWeights, WeightedSampler


class FlatSampler:
    """The previous sampler, for comparison: a flat float64 cdf (8 bytes per item)."""

    def __init__(self, probs: torch.Tensor) -> None:
        self.cdf = torch.cumsum(probs.double(), 0)
        self.total = self.cdf[-1]

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, dtype=torch.float64, generator=generator).to(self.cdf.device)
        return torch.searchsorted(self.cdf, u * self.total, right=True)


def original_weight_step(
    weights: BackgroundWeights, opt: torch.optim.Optimizer, idx: torch.Tensor, losses: torch.Tensor
) -> None:
    """The weight step as it was before the fused update (for comparison): ``ratios`` and
    ``grad_omega`` each over all N in float64, with N-sized float64 temporaries, then SGD."""
    eps = weights.eps
    omega = weights.omega.detach()
    w = F.softplus(omega.double()).clamp_min(1e-12)
    _ = (w.pow(eps).sum() / w.sum() * w[idx].pow(1.0 - eps)).float()  # ratios, as before
    w = F.softplus(omega.double()).clamp_min(1e-12)
    loss = losses.to(torch.float64) / idx.numel()
    s_eps, s_1 = w.pow(eps).sum(), w.sum()
    a = (loss * w[idx].pow(1.0 - eps)).sum()
    grad = torch.zeros_like(w) - a * s_eps / s_1**2
    grad += (a * eps / s_1) * w.pow(eps - 1.0)
    sparse = torch.zeros_like(w).index_add_(0, idx, loss)
    grad += (s_eps / s_1 * (1.0 - eps)) * w.pow(-eps) * sparse
    grad *= torch.sigmoid(omega.double())
    opt.zero_grad(set_to_none=True)
    weights.omega.grad = grad.float()
    opt.step()


def _mem_now(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return C.rss_bytes()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        C.reset_peak_rss()


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return C.peak_rss_bytes()


def bench_refresh(weights: BackgroundWeights, device: torch.device, reps: int) -> dict:
    """Memory of a first refresh from nothing, then refresh times, interleaved with the parts."""
    n = len(weights)
    C.release_memory()
    base = _mem_now(device)
    _reset_peak(device)
    t0 = time.perf_counter()
    sampler = WeightedSampler(weights.masses())
    C.sync(device)
    first = time.perf_counter() - t0
    peak = _peak(device) - base
    kept = _mem_now(device) - base
    print(
        f"first refresh {first:.3f} s; sampler holds {sampler.nbytes / n:.3f} B/item "
        f"(memory delta {kept / n:.2f} B/item), peak while refreshing {peak / n:.2f} B/item"
    )
    masses = weights.masses()
    times = C.interleaved(
        {
            "refresh": lambda: sampler.refresh(weights.masses()),
            "masses": weights.masses,
            "build": lambda: sampler.refresh(masses),
        },
        reps,
        device,
        warmup=0,
    )
    out = {k: C.median(v) for k, v in times.items()}
    print(
        f"refresh {out['refresh']:.3f} s = masses {out['masses']:.3f} s "
        f"+ sampler {out['build']:.3f} s  (goal <= 2 s)"
    )
    return {
        "refresh_s": round(out["refresh"], 4),
        "refresh_masses_s": round(out["masses"], 4),
        "refresh_sampler_s": round(out["build"], 4),
        "first_refresh_s": round(first, 4),
        "bytes_per_item": round(sampler.nbytes / n, 3),
        "refresh_peak_bytes_per_item": round(peak / n, 2),
    }


def bench_draw(weights: BackgroundWeights, device: torch.device, batch: int, reps: int) -> dict:
    """One batch of draws: ours, a flat float64 cdf, torch.multinomial where allowed."""
    sampler = WeightedSampler(weights.masses())
    flat = FlatSampler(weights.masses())
    gen = torch.Generator()
    fns = {"ours": lambda: sampler.draw(batch, gen), "flat": lambda: flat.draw(batch, gen)}
    if len(weights) <= 2**24:
        probs32 = weights.masses()
        fns["multinomial"] = lambda: torch.multinomial(probs32, batch, replacement=True)
    times = C.interleaved(fns, reps, device, warmup=5)
    ms = {k: 1e3 * C.median(v) for k, v in times.items()}
    ratio = C.paired_ratio(times, "ours", "flat")
    print(
        f"draw of {batch}: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
        + f"  (ours / flat {ratio:.2f}; goal <= 1 ms)"
    )
    out = {"draw_ms": round(ms["ours"], 4), "draw_ms_flat_cdf": round(ms["flat"], 4)}
    if "multinomial" in ms:
        out["draw_ms_multinomial"] = round(ms["multinomial"], 4)
    return out


def bench_weight_step(
    omega: torch.Tensor,
    eps: float,
    device: torch.device,
    batch: int,
    reps: int,
    compile: bool,
    original: bool,
) -> dict:
    """The weight step, fused vs plain, each on its own copy of the weights and SGD state (a
    shared copy would hand the sums cached by one variant to the other)."""
    n = omega.numel()
    gen = torch.Generator().manual_seed(1)

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(n, (batch,), generator=gen).to(device)
        return idx, torch.rand(batch, generator=gen).to(device)

    def variant(kind: str):
        w = BackgroundWeights(n, eps=eps).to(device)
        with torch.no_grad():
            w.omega.copy_(omega)
        opt = torch.optim.SGD(w.parameters(), lr=100.0, momentum=0.9, maximize=True)

        def step() -> None:
            idx, losses = draw()
            w.ratios(idx)  # O(batch) after ascent_step; O(N) after torch's SGD step
            if kind == "original":
                original_weight_step(w, opt, idx, losses)
            elif kind == "plain":
                opt.zero_grad(set_to_none=True)
                w.omega.grad = w.grad_omega(idx, losses)
                opt.step()
            else:
                w.ascent_step(idx, losses, opt, compile=kind == "compiled")

        return step

    kinds = ["fused", "plain"] + (["compiled"] if compile else [])
    kinds += ["original"] if original else []
    fns = {k: variant(k) for k in kinds}
    times = C.interleaved(fns, reps, device, warmup=1)
    peaks = {}
    for k, fn in fns.items():  # transient memory of one step, beyond omega and its buffer
        C.release_memory()
        base = _mem_now(device)
        _reset_peak(device)
        fn()
        C.sync(device)
        peaks[k] = (_peak(device) - base) / n
    ms = {k: 1e3 * C.median(v) for k, v in times.items()}
    ratio = C.paired_ratio(times, "plain", "fused")
    print(
        "weight step: "
        + ", ".join(
            f"{k} {v:.1f} ms ({1e6 * v / n:.2f} ns/item, peak +{peaks[k]:.1f} B/item)"
            for k, v in ms.items()
        )
        + f"  (plain / fused {ratio:.2f})"
    )
    out = {
        "weight_step_ms": round(ms["fused"], 2),
        "weight_step_plain_ms": round(ms["plain"], 2),
        "weight_step_plain_over_fused": round(ratio, 2),
        "weight_step_peak_bytes_per_item": round(peaks["fused"], 2),
        "weight_step_plain_peak_bytes_per_item": round(peaks["plain"], 2),
    }
    if compile:
        out["weight_step_compiled_ms"] = round(ms["compiled"], 2)
    if original:
        out["weight_step_original_ms"] = round(ms["original"], 2)
        out["weight_step_original_peak_bytes_per_item"] = round(peaks["original"], 2)
        out["weight_step_original_over_fused"] = round(
            C.paired_ratio(times, "original", "fused"), 2
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pool-size", type=int, default=1_000_000)
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--draw-reps", type=int, default=200)
    p.add_argument("--refresh-reps", type=int, default=3)
    p.add_argument("--step-reps", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time ascent_step(compile=True)")
    p.add_argument(
        "--original",
        choices=["auto", "yes", "no"],
        default="auto",
        help="also time the weight step as it was before the fused update (auto: N <= 20M; "
        "it needs about 60 bytes per item)",
    )
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    n = args.pool_size
    print(f"pool size {n:,}, eps {args.eps}, device {device}, threads {torch.get_num_threads()}")
    weights = BackgroundWeights(n, eps=args.eps).to(device)
    with torch.no_grad():
        weights.omega.normal_(0.0, 2.0, generator=torch.Generator(device).manual_seed(0))
    result: dict[str, object] = {"benchmark": "sampler", "pool_size": n, "eps": args.eps}
    result.update(bench_refresh(weights, device, args.refresh_reps))
    result.update(bench_draw(weights, device, args.batch, args.draw_reps))
    omega = weights.omega.detach()
    del weights
    result.update(
        bench_weight_step(
            omega,
            args.eps,
            device,
            args.batch,
            args.step_reps,
            args.compile,
            args.original == "yes" or (args.original == "auto" and n <= 20_000_000),
        )
    )
    result.update(C.machine(device))
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
