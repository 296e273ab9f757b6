"""Training-step cost of resampling: an Algorithm 1 step vs a plain Outlier Exposure step vs the
model's own compute.

    .venv/bin/python benchmarks/step.py [--model small_cnn|wrn40_2|wrn40_4] [--pool-size N]
        [--device cpu|cuda] [--amp] [--channels-last] [--compile] [--threads 1]

Three step variants run interleaved (A, B, C, A, B, C, ...) on synthetic uint8 32x32 data (an ID
set with labels and a background pool of ``--pool-size`` items), batch 128 ID + 128 background,
with the real engine pieces (``Accel``, ``crop_flip``, ``EpochBatches``, ``BackgroundResampler``
and ``algorithm1_step``):

- resample: one iteration of the loop of ``engine.resample.resample``: background batch drawn
  by ``BackgroundResampler.draw`` from p (eq. 11), crops/flips, the draw counter,
  ``algorithm1_step`` (joint forward, CE + alpha r L_uni, backward, SGD, the weight step). The
  sampler refresh, once per pool epoch (N / 128 steps), is timed apart and reported amortised.
- oe: one iteration of the loop of ``engine.finetune.finetune`` on the full pool: background
  batch drawn uniformly, same pre-processing, CE + alpha L_uni, backward, SGD.
- compute: forward + losses + backward + SGD step on preloaded, normalised tensors (no data
  pipeline, no sampling, no weights).

Goals: resample / oe <= 1.05, resample / compute <= 1.10 (CPU). ``--compile-weights`` runs the
weight step as one compiled kernel (``Accel.compile_weights``, the CUDA default).
``id_epoch_refresh_over_step``: the sampler refresh amortised over ``--id-epoch-steps`` (the
authors' cadence, ``resample.refresh=id-epoch``) as a share of a resampling step.

The pool's images are ``--images`` distinct arrays indexed modulo their count (an 80M-image pool
would need 245 GB): the gather from memory is real, disk reads are not measured.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse

import _common as C
import torch

from bgresample import BackgroundResampler, UniformityLoss
from bgresample.data.base import LabeledImages
from bgresample.data.transforms import prepare
from bgresample.engine.resample import algorithm1_step
from bgresample.models import create_model
from bgresample.rng import Stream, generator, seed_step
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import EpochBatches, crop_flip, id_batch, local_slice, uniform_batch
from bgresample.runtime.forward import ce, check_finite, joint_forward
from bgresample.runtime.optim import sgd

BATCH = 128
ALPHA = 0.5
SEED = 0


class ModuloPool:
    """An in-memory background pool of ``size`` items backed by fewer distinct images."""

    name = "synthetic"
    normalized = False
    family = None
    source = None

    def __init__(self, data: torch.Tensor, size: int) -> None:
        self.data, self.size = data, size

    def __len__(self) -> int:
        return self.size

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.data[indices.to(self.data.device) % len(self.data)]


@torch.no_grad()
def calibrate_bn(model: torch.nn.Module, train: LabeledImages, accel: Accel) -> None:
    """BatchNorm running statistics from 8 batches of the ID data, as a pre-trained model has
    them. Resampling and fine-tuning freeze BN (eval mode); with a fresh model's statistics
    (mean 0, variance 1) the activations of a WRN grow through its blocks, and the bf16 step
    diverged at its second step on an H200."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train(True)
    for k in range(8):
        idx = torch.arange(k * 2 * BATCH, (k + 1) * 2 * BATCH) % len(train)
        with accel.autocast():
            model(accel.batch(train, idx))
    for m in bns:
        m.momentum = 0.1


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="small_cnn", choices=["small_cnn", "wrn40_2", "wrn40_4"])
    p.add_argument("--pool-size", type=int, default=1_000_000)
    p.add_argument("--id-size", type=int, default=10_000)
    p.add_argument("--images", type=int, default=20_000, help="distinct pool images in memory")
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--compile-weights",
        action="store_true",
        help="the weight step as one torch.compile-d kernel (accel.compile_weights; GPU)",
    )
    p.add_argument(
        "--id-epoch-steps",
        type=int,
        default=390,
        help="steps per ID epoch for the authors' refresh cadence (390: CIFAR-10 at batch 128)",
    )
    p.add_argument("--reps", type=int, default=0, help="timed rounds (0: by model and device)")
    p.add_argument("--warmup", type=int, default=0, help="untimed rounds (0: by model)")
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    cuda = device.type == "cuda"
    heavy = args.model != "small_cnn" and not cuda
    reps = args.reps or (5 if heavy else 30)
    warmup = args.warmup or (3 if args.compile else 1 if heavy else 3)
    n_pool = args.pool_size

    accel = Accel(
        device=device,
        channels_last=args.channels_last,
        amp=args.amp,
        compile=args.compile,
        data_on_device=cuda,
        compile_weights=args.compile_weights,
    )
    gen = torch.Generator().manual_seed(SEED)
    train = LabeledImages(
        torch.randint(0, 256, (args.id_size, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 10, (args.id_size,), generator=gen),
    )
    pool = ModuloPool(
        torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen),
        n_pool,
    )
    accel.stage(train)
    if accel.data_on_device:
        pool.data = pool.data.to(device)
    torch.manual_seed(SEED)
    model = create_model(args.model, num_classes=10)
    net = accel.model(model)
    calibrate_bn(model, train, accel)
    model.train(False)  # the resample / fine-tune defaults: frozen BN, dropout off (freeze_bn)
    opt = sgd(model, 0.001, 0.9, 5e-4)
    loss_out = UniformityLoss(reduction="none")
    sl = local_slice(BATCH)
    batches = EpochBatches(len(train), BATCH, SEED)

    def make_resample():
        resampler = BackgroundResampler(
            n_pool, eps=args.eps, device=device, compile=args.compile_weights
        )
        draws = torch.zeros(n_pool, dtype=torch.int32)
        state = {"step": 0}

        def step() -> None:
            s = state["step"]
            state["step"] += 1
            seed_step(SEED, s)
            x_id, y = id_batch(train, batches, s, True, accel)
            bidx = resampler.draw(BATCH, generator(SEED, Stream.BACKGROUND, s)).cpu()
            baug = crop_flip(BATCH, SEED, Stream.BACKGROUND_AUG, s, flip=True).shard(sl)
            draws.index_add_(0, bidx, torch.ones(BATCH, dtype=torch.int32))
            x_bg = accel.batch(pool, bidx[sl], baug)
            algorithm1_step(net, resampler, opt, x_id, y, x_bg, bidx[sl], ALPHA, loss_out, accel, s)

        return step, resampler.refresh

    def oe_step_factory():
        state = {"step": 0}

        def step() -> None:
            s = state["step"]
            state["step"] += 1
            seed_step(SEED, s)
            x_id, y = id_batch(train, batches, s, True, accel)
            pick = uniform_batch(n_pool, BATCH, SEED, Stream.BACKGROUND, s)
            baug = crop_flip(BATCH, SEED, Stream.BACKGROUND_AUG, s, flip=True).shard(sl)
            x_bg = accel.batch(pool, pick[sl], baug)
            with accel.autocast():
                logits_id, logits_bg = joint_forward(net, x_id, x_bg)
            l_in = ce(logits_id, y)
            loss = l_in + ALPHA * loss_out(logits_bg.float()).mean()
            check_finite(loss, "oe", s, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    # Compute only: preloaded, normalised, augmented tensors.
    x_pre = prepare(
        torch.cat([train.data[:BATCH].cpu(), pool.data[:BATCH].cpu()]).to(device)
    ).contiguous(
        memory_format=torch.channels_last if args.channels_last else torch.contiguous_format
    )
    y_pre = train.targets[:BATCH].to(device)

    def compute() -> None:
        with accel.autocast():
            logits = net(x_pre)
        loss = ce(logits[:BATCH], y_pre) + ALPHA * loss_out(logits[BATCH:].float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    resample_step, refresh = make_resample()
    fns = {"resample": resample_step, "oe": oe_step_factory(), "compute": compute}
    print(
        f"model {args.model}, device {device}, amp {args.amp}, channels_last "
        f"{args.channels_last}, compile {args.compile}, pool {n_pool:,}, threads "
        f"{torch.get_num_threads()}; compiled weight step {args.compile_weights}; "
        f"{warmup} warm-up + {reps} timed rounds"
    )
    times = C.interleaved(fns, reps, device, warmup=warmup)
    refresh_times = C.interleaved({"refresh": refresh}, 3, device, warmup=0)["refresh"]
    refresh_per_step = C.median(refresh_times) / max(n_pool // BATCH, 1)
    refresh_per_step_id = C.median(refresh_times) / max(args.id_epoch_steps, 1)

    ms = {k: 1e3 * C.median(v) for k, v in times.items()}
    for k, v in ms.items():
        print(f"  {k:15s} {v:9.2f} ms/step")
    print(
        f"  refresh         {C.median(refresh_times):9.3f} s per pool epoch "
        f"= {1e3 * refresh_per_step:.4f} ms/step amortised once per pool epoch, "
        f"{1e3 * refresh_per_step_id:.4f} ms/step once per ID epoch ({args.id_epoch_steps} steps)"
    )
    result: dict[str, object] = {
        "benchmark": "step",
        "model": args.model,
        "pool_size": n_pool,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "compile_weights": args.compile_weights,
        "reps": reps,
        "step_ms": {k: round(v, 3) for k, v in ms.items()},
        "refresh_s": round(C.median(refresh_times), 4),
        "id_epoch_refresh_over_step": round(refresh_per_step_id / C.median(times["resample"]), 5),
        "resample_over_oe": round(C.paired_ratio(times, "resample", "oe"), 4),
        "step_over_compute": round(C.paired_ratio(times, "resample", "compute"), 4),
        "oe_over_compute": round(C.paired_ratio(times, "oe", "compute"), 4),
    }
    for k in [k for k in result if k.endswith(("_over_oe", "_over_compute"))]:
        print(f"  {k:24s} {result[k]:.3f}")
    result.update(C.machine(device))
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
