"""The background losses by name (``finetune.loss``, ``resample.loss``), each declared once with
what the training loops need to know about it: :func:`register_loss` adds one to
:data:`BACKGROUND_LOSSES`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bgresample.losses.modules import (
    EnergyMarginLoss,
    ExtraClassLoss,
    MaxEntropyLoss,
    UniformityLoss,
)


@dataclass(frozen=True)
class LossSpec:
    """A background loss: its ``nn.Module`` class (built with ``reduction=...``, and the loss's
    own options); ``algorithm1``: a per-example loss of the background logits alone, which
    Algorithm 1 weights and ascends (eqs. 10-12); ``uses_id``: its ``forward(logits_bg,
    logits_in)`` also takes the ID logits; ``extra_class``: the model needs a (K+1)-th
    background output; ``score``: the OOD score that goes with it (``selectors.score: auto``)."""

    module: type[nn.Module]
    algorithm1: bool = False
    uses_id: bool = False
    extra_class: bool = False
    score: str = "msp"


BACKGROUND_LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, spec: LossSpec) -> LossSpec:
    """Add a background loss under ``name``; ValueError for a taken name or a spec that is
    not a :class:`LossSpec` of an ``nn.Module`` class."""
    if not isinstance(spec, LossSpec) or not issubclass(spec.module, nn.Module):
        raise ValueError(f"loss {name!r}: expected a LossSpec of an nn.Module class")
    if name in BACKGROUND_LOSSES and BACKGROUND_LOSSES[name] != spec:
        raise ValueError(f"loss {name!r} is registered already")
    BACKGROUND_LOSSES[name] = spec
    return spec


def algorithm1_losses() -> list[str]:
    """The losses Algorithm 1 can weight (``resample.loss``)."""
    return [n for n, s in BACKGROUND_LOSSES.items() if s.algorithm1]


register_loss("uniform", LossSpec(UniformityLoss, algorithm1=True))
register_loss("max_entropy", LossSpec(MaxEntropyLoss, algorithm1=True))
register_loss("energy", LossSpec(EnergyMarginLoss, uses_id=True, score="energy"))
register_loss("extra_class", LossSpec(ExtraClassLoss, extra_class=True, score="extra_class"))
