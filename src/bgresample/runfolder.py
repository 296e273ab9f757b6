"""Run folders: every command writes its resolved config, seeds, code version and a log there."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import bgresample
from bgresample import config as C
from bgresample.checkpoint import atomic_write_text
from bgresample.errors import UserError

log = logging.getLogger("bgresample")


def code_version() -> str:
    """Package version plus the git commit (and ``-dirty``) when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{bgresample.__version__}+{sha}" if sha else bgresample.__version__


def prepare_run_folder(
    out: str | Path,
    cfg: C.Config,
    command: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    write: bool = True,
) -> Path:
    """Create ``out``, refuse to clobber another run, write ``config.yaml`` and ``meta.json``.

    A folder that already holds a run (a ``config.yaml``) is refused unless ``overwrite`` or
    ``resume`` is given. ``write=False`` (non-zero ranks) only returns the path.
    """
    out = Path(out)
    if not write:
        return out
    existing = out / "config.yaml"
    if existing.exists() and not (overwrite or resume):
        raise UserError(
            f"{out} already holds a run; pass --overwrite to replace it, --resume to continue "
            "it, or choose another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the run folder {out}: {e.strerror}; choose another --out"
        ) from None
    atomic_write_text(existing, C.dump(cfg))
    meta = {
        "command": command,
        "argv": sys.argv,
        "seed": cfg.seed,
        "code_version": code_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
    return out


def setup_logging(out: Path | None, quiet: bool = False, write: bool = True) -> None:
    """Log to stderr (unless ``quiet``) and to ``out/log.txt``."""
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    if not quiet:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
    if out is not None and write:
        out.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(out / "log.txt")
        fh.setFormatter(fmt)
        log.addHandler(fh)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))
