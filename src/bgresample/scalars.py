"""Optional TensorBoard scalars (losses, accuracy, weight statistics) in the run folder.

Active only when the ``tensorboard`` package is installed and a run folder is configured; every
call is a no-op otherwise, and on ranks other than 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bgresample import dist, files

log = logging.getLogger("bgresample")

_writer: Any = None


def configure(out: Path | None) -> bool:
    """Write scalars under ``out/tensorboard`` if TensorBoard is installed; returns whether."""
    global _writer
    close()
    if out is None or not dist.info().is_main:
        return False
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    files.check_folder(out / "tensorboard")  # never a link out of the run folder
    _writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    return True


def scalar(tag: str, value: float, step: int) -> None:
    if _writer is not None:
        _writer.add_scalar(tag, float(value), step)


def close() -> None:
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None
