"""Progress bars: tqdm with an ETA; sparse updates when stderr is not a terminal (logs, CI)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, unit: str, quiet: bool = False) -> tqdm:
    """A tqdm bar over ``iterable``; disabled when ``quiet``."""
    tty = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        disable=quiet,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.2 if tty else 30.0,
    )
