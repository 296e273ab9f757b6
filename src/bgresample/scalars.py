"""Training curves and final metrics as TensorBoard scalars in the run folder, and optionally
in Weights & Biases (``log.wandb``).

TensorBoard is used when the ``tensorboard`` package is installed and a run folder is
configured; every call is a no-op otherwise, and on ranks other than 0. Writers are created on
the first value written, so a command that records nothing (``select``, ``evaluate``) leaves no
event file. Recording reads values the stages computed anyway: it draws no random numbers and
changes no computation. Tags: docs/usage.md#logging-tensorboard-and-weights--biases.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgresample import dist, files, optional

if TYPE_CHECKING:
    from bgresample.config import Config

log = logging.getLogger("bgresample")


class _Sinks:
    """Where values go: the run folder, and the writers once something is recorded."""

    def __init__(self, out: Path, cfg: Config | None) -> None:
        self.out, self.cfg = out, cfg
        self.tensorboard: Any = None  # SummaryWriter, once created
        self.tensorboard_missing = False
        self.wandb_module = optional.wandb() if cfg is not None and cfg.log.wandb else None
        self.wandb: Any = None  # wandb run, once started
        self.axes: set[str] = set()  # wandb x axes defined so far

    def writer(self) -> Any:
        """The SummaryWriter under ``out/tensorboard``, created now if needed; None without
        TensorBoard."""
        if self.tensorboard is None and not self.tensorboard_missing:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tensorboard_missing = True
                return None
            files.check_folder(self.out / "tensorboard")
            self.tensorboard = SummaryWriter(log_dir=str(self.out / "tensorboard"))
        return self.tensorboard

    def wandb_run(self) -> Any:
        """The wandb run writing under ``out/wandb``, started now if needed: offline unless
        ``WANDB_MODE`` says otherwise, project ``bgresample`` unless ``WANDB_PROJECT`` is set.
        None without ``log.wandb`` or wandb."""
        if self.wandb is None and self.wandb_module is not None:
            assert self.cfg is not None
            files.check_folder(self.out / "wandb")
            env = os.environ
            try:
                self.wandb = self.wandb_module.init(
                    dir=str(self.out),
                    name=self.out.name,
                    config=self.cfg.to_dict(),
                    mode=None if "WANDB_MODE" in env else "offline",
                    project=None if "WANDB_PROJECT" in env else "bgresample",
                )
            except Exception as e:  # e.g. online without a key: a curve must not stop a run
                log.warning("wandb did not start (%s); going on without it", e)
                self.wandb_module = None
        return self.wandb

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


_sinks: _Sinks | None = None


def configure(out: Path | None, cfg: Config | None = None) -> None:
    """Record into ``out/tensorboard`` (and, with ``cfg.log.wandb``, a wandb run in
    ``out/wandb``) from the first value on; nothing with ``out`` None or off rank 0."""
    global _sinks
    close()
    if out is None or not dist.info().is_main:
        return
    files.check_folder(out / "tensorboard")  # never a link out of the run folder
    _sinks = _Sinks(out, cfg)


def record(prefix: str, values: Mapping[str, float], step: int, axis: str = "step") -> None:
    """Write each ``values[name]`` as the scalar ``prefix/name`` at ``step``; in wandb, against
    the x axis ``prefix/axis`` (e.g. ``epoch``, ``seed``), since its own step only increases."""
    if _sinks is None:
        return
    writer = _sinks.writer()
    if writer is not None:
        for name, value in values.items():
            writer.add_scalar(f"{prefix}/{name}", float(value), step)
    run = _sinks.wandb_run()
    if run is not None:
        x = f"{prefix}/{axis}"
        if x not in _sinks.axes:
            run.define_metric(x, hidden=True)
            run.define_metric(f"{prefix}/*", step_metric=x)
            _sinks.axes.add(x)
        run.log({**{f"{prefix}/{k}": float(v) for k, v in values.items()}, x: step})


def close() -> None:
    """Flush and close the writers (and finish the wandb run)."""
    global _sinks
    if _sinks is not None:
        _sinks.close()
        _sinks = None
