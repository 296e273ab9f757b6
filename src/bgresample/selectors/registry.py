"""The selector registry: :func:`register_selector` checks a selector's declaration (see
:class:`~bgresample.selectors.base.Selector`) and adds it to :data:`SELECTORS`, from which the
config section ``selectors.NAME``, the CLI's variant choices and the run's stages are built. A new
selector is one file with a decorated class (and its test)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from bgresample.rng import Stream
from bgresample.selectors.base import NEEDS, Selector

#: The variant without background data.
NONE = "none"
#: Separator of a cell's variant name ``SELECTOR+LOSS``: the selector's background with
#: ``finetune.loss=LOSS`` (and that loss's score), e.g. ``resampled+energy``; a plain selector
#: name fine-tunes with ``finetune.loss``.
CELL_SEP = "+"

SELECTORS: dict[str, type[Selector]] = {}

S = TypeVar("S", bound=type[Selector])


def register_selector(cls: S) -> S:
    """Add ``cls`` to :data:`SELECTORS` (a class decorator); ValueError for a declaration that
    would clash: a taken or reserved name, an unknown refresh or need, ``Options`` that is not a
    dataclass with a default for every field, or a stream number another selector or the core
    (:class:`bgresample.rng.Stream`) already uses."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == NONE or "," in name or CELL_SEP in name:
        raise ValueError(
            f"{cls.__name__}: name must be a non-empty string other than 'none', without ',' "
            f"or {CELL_SEP!r}"
        )
    if name in SELECTORS and SELECTORS[name] is not cls:
        raise ValueError(f"selector {name!r} is registered already ({SELECTORS[name].__name__})")
    if getattr(cls, "refresh", None) not in ("once", "epoch", "batch"):
        raise ValueError(f"selector {name!r}: refresh must be once, epoch or batch")
    if not set(cls.needs) <= set(NEEDS):
        raise ValueError(f"selector {name!r}: needs must be a subset of {', '.join(NEEDS)}")
    if cls.Options is not None:
        if not dataclasses.is_dataclass(cls.Options):
            raise ValueError(f"selector {name!r}: Options must be a dataclass")
        bare = [
            f.name
            for f in dataclasses.fields(cls.Options)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if bare:
            raise ValueError(f"selector {name!r}: options {', '.join(bare)} need defaults")
    core = {int(s) for s in Stream}
    taken = {
        int(n): other
        for other, c in SELECTORS.items()
        if other != name
        for n in c.streams.values()
        if int(n) not in core
    }
    for purpose, number in cls.streams.items():
        if isinstance(number, Stream):
            continue  # a core stream shared on purpose (e.g. SELECT)
        if int(number) in core or int(number) in taken:
            who = taken.get(int(number), "the core streams")
            raise ValueError(
                f"selector {name!r}: stream {purpose}={number} is used by {who}; pick another "
                "number (never renumber a stream that results were produced with)"
            )
    SELECTORS[name] = cls
    return cls


def variant_parts(name: str) -> tuple[str, str | None]:
    """(selector, loss) of the variant ``name``: ``"resampled+energy"`` gives
    ``("resampled", "energy")``, a plain ``"resampled"`` gives ``("resampled", None)`` (the
    run's ``finetune.loss``)."""
    selector, sep, loss = name.partition(CELL_SEP)
    return selector, (loss if sep else None)


def selector_needs(name: str, need: str) -> bool:
    """Whether the selector of variant ``name`` (a cell ``SELECTOR+LOSS`` included) is
    registered and declares ``need`` (``weights``, ``features``, ``model``)."""
    cls = SELECTORS.get(variant_parts(name)[0])
    return cls is not None and need in cls.needs


def weight_selectors(names: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The variants (of ``names``, default all selectors) whose selector needs Algorithm 1's
    weights."""
    pool = list(SELECTORS) if names is None else list(names)
    return [n for n in pool if selector_needs(n, "weights")]


def config_options() -> dict[str, type]:
    """``{name: Options}`` of the selectors whose options form a config section."""
    return {
        n: c.Options for n, c in SELECTORS.items() if c.Options is not None and c.config_section
    }
