"""Evaluation throughput: images per second of ``runtime.forward.predict_logits`` (the scorer of
every OOD evaluation) for the embedded benchmark's model (small_cnn) and WRN-40-2 at 32x32.

    .venv/bin/python benchmarks/eval.py [--device cpu|cuda] [--amp] [--channels-last]
        [--models small_cnn wrn40_2] [--threads 1]

Each model scores a synthetic uint8 set through the real path (index, normalise, forward in eval
mode, logits to the CPU), interleaved with a bare forward pass over the same batches preloaded
as normalised float tensors; ``over_forward`` is the ratio (the data path's overhead).

Ends with one JSON line.
"""

from __future__ import annotations

import argparse

import _common as C
import torch

from bgresample.data.base import ImageArray
from bgresample.data.transforms import prepare
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.forward import predict_logits


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["small_cnn", "wrn40_2"])
    p.add_argument("--images", type=int, default=0, help="images per model (0: by model)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    C.add_common_args(p)
    args = p.parse_args(argv)
    device = C.setup(args)
    cuda = device.type == "cuda"
    accel = Accel(device=device, channels_last=args.channels_last, amp=args.amp)
    gen = torch.Generator().manual_seed(0)
    fns, counts = {}, {}
    for name in args.models:
        count = args.images or (50_000 if cuda else 10_000 if name == "small_cnn" else 250)
        images = ImageArray(
            torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=gen),
            name="synthetic",
        )
        model = create_model(name, num_classes=10)
        net = accel.model(model)
        model.eval()
        fmt = torch.channels_last if args.channels_last else torch.contiguous_format
        pre = [
            prepare(images.data[i : i + args.batch_size].to(device)).contiguous(memory_format=fmt)
            for i in range(0, count, args.batch_size)
        ]

        def predict(model=model, images=images) -> None:
            predict_logits(model, images, accel, batch_size=args.batch_size)

        @torch.no_grad()
        def forward(net=net, pre=pre) -> None:
            for x in pre:
                with accel.autocast():
                    net(x).float().cpu()

        fns[name], fns[name + ":forward"] = predict, forward
        counts[name] = count
    print(
        f"device {device}, amp {args.amp}, channels_last {args.channels_last}, threads "
        f"{torch.get_num_threads()}, images {counts}, batch {args.batch_size}"
    )
    times = C.interleaved(fns, args.reps, device, warmup=1)
    result: dict[str, object] = {
        "benchmark": "eval",
        "amp": args.amp,
        "channels_last": args.channels_last,
        "images_per_s": {},
        "over_forward": {},
    }
    for name, count in counts.items():
        ips = count / C.median(times[name])
        ratio = C.paired_ratio(times, name, name + ":forward")
        result["images_per_s"][name] = round(ips, 1)
        result["over_forward"][name] = round(ratio, 3)
        print(f"  {name:10s} {ips:10.0f} images/s  (predict_logits / bare forward {ratio:.3f})")
    result.update(C.machine(device))
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
