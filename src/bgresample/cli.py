"""The ``bgresample`` command line: pretrain, resample, select, finetune, evaluate, run."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bgresample import config as C
from bgresample.errors import UserError

log = logging.getLogger("bgresample")

QUICK = [
    "data.embedded.pool_size=4000",
    "data.embedded.ood_size=300",
    "data.embedded.noise_ood_size=1000",
    "pretrain.epochs=8",
    "resample.draws_per_item=2",
    "finetune.epochs=4",
    "run.seeds=2",
]


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--out", required=out_required, help="run folder to write into")
    g.add_argument("--config", help="YAML config file (defaults: bgresample/configs/default.yaml)")
    g.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set resample.eps=0.25 (repeatable)",
    )
    g.add_argument("--seed", type=int, help="training seed (config: seed)")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N (config: device)")
    g.add_argument("--data-root", help="data directory (config: data.root)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or console log")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgresample",
        description="Outlier-aware classification with adversarially resampled background data "
        "(Li & Vasconcelos, CVPR 2020).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("pretrain", help="train the classifier on ID data alone")
    _common(p)

    p = sub.add_parser("evaluate", help="OOD detection and accuracy of a checkpoint")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="model .safetensors to evaluate")
    p.add_argument("--ood", action="append", help="OOD set name (repeatable; default: all)")
    p.add_argument("--variant", default="model", help="name of this model in results.json")

    p = sub.add_parser("resample", help="learn background weights (Algorithm 1)")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="pre-trained model .safetensors")

    p = sub.add_parser("select", help="choose a background subset of ratio gamma")
    _common(p)
    p.add_argument("--weights", help="weights.safetensors from `resample` (weight-based methods)")
    p.add_argument(
        "--method", help="authors | weighted | topk | random | full (config: select.method)"
    )
    p.add_argument("--gamma", type=float, help="subset ratio in (0, 1] (config: select.gamma)")

    p = sub.add_parser("finetune", help="fine-tune a pre-trained model with background data")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="pre-trained model .safetensors")
    p.add_argument(
        "--background",
        required=True,
        choices=["none", "full", "random", "resampled"],
        help="which background data to fine-tune with",
    )
    p.add_argument("--subset", help="subset manifest CSV (from `select`); needed for resampled")

    p = sub.add_parser("run", help="the whole experiment: Tables 2 and 3 over several seeds")
    _common(p, out_required=False)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (under a minute)")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")
    return parser


def _version() -> str:
    from bgresample.runfolder import code_version

    return f"bgresample {code_version()}"


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    sets = list(QUICK if getattr(args, "quick", False) else []) + list(args.sets)
    cfg = C.load_config(args.config, sets)
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.device is not None:
        cfg["device"] = args.device
    if args.data_root is not None:
        cfg["data"]["root"] = args.data_root
    if getattr(args, "seeds", None) is not None:
        cfg["run"]["seeds"] = args.seeds
    if getattr(args, "gamma", None) is not None:
        cfg["select"]["gamma"] = args.gamma
    if getattr(args, "method", None) is not None:
        cfg["select"]["method"] = args.method
    if getattr(args, "ood", None):
        cfg["evaluate"]["ood"] = args.ood
    C.validate(cfg)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as e:
        print(f"bgresample {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bgresample {args.command}: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from bgresample import commands

    cfg = resolve_config(args)
    if args.command == "run" and args.out is None:
        args.out = "runs/quick" if args.quick else "runs/main"
    t0 = time.perf_counter()
    handler = getattr(commands, f"cmd_{args.command}")
    handler(args, cfg)
    log.info(
        "%s finished in %.1f s; outputs in %s",
        args.command,
        time.perf_counter() - t0,
        Path(args.out),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
