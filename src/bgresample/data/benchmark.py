"""Resolve a config's data section into ID train/test, a background pool and OOD test sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.embedded import EmbeddedConfig, load_embedded
from bgresample.errors import UserError

BENCHMARKS = ("embedded",)


@dataclass
class Benchmark:
    """Everything one experiment reads."""

    name: str
    train: LabeledImages
    test: LabeledImages
    pool: ImageArray
    ood: dict[str, ImageArray]
    num_classes: int
    flip: bool


def load_benchmark(cfg: dict[str, Any], ood_names: list[str] | None = None) -> Benchmark:
    """Load the benchmark the config names, keeping only the OOD sets asked for."""
    data = cfg["data"]
    name = data["benchmark"]
    if name != "embedded":
        raise UserError(f"unknown benchmark '{name}'; valid: {', '.join(BENCHMARKS)}")
    emb = dict(data["embedded"])
    seed = int(emb.pop("seed", 0))
    b = load_embedded(data.get("root"), seed=seed, config=EmbeddedConfig(**emb))
    ood = select_ood(b.ood, ood_names if ood_names is not None else cfg["evaluate"]["ood"])
    return Benchmark(
        name="embedded",
        train=b.train,
        test=b.test,
        pool=b.pool,
        ood=ood,
        num_classes=len(b.classes),
        flip=bool(data.get("flip", False)),
    )


def select_ood(available: dict[str, ImageArray], wanted: str | list[str]) -> dict[str, ImageArray]:
    """The OOD sets named in ``wanted`` (``all`` for every one); unknown names are an error."""
    if wanted == "all" or wanted == ["all"]:
        return dict(available)
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(
            f"unknown OOD set {', '.join(repr(u) for u in unknown)}; valid: "
            f"{', '.join(available)} (or all)"
        )
    return {n: available[n] for n in names}
