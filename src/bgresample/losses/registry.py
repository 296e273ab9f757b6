"""The background losses by name (``finetune.loss``, ``resample.loss``), each declared once with
what the training loops need to know about it: :func:`register_loss` adds one to
:data:`BACKGROUND_LOSSES`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from bgresample.losses.hopfield import HopfieldBoostingLoss
from bgresample.losses.modules import (
    EnergyMarginLoss,
    ExtraClassLoss,
    MaxEntropyLoss,
    UniformityLoss,
)
from bgresample.options import NON_NEGATIVE, POSITIVE, POSITIVE_INT, make_options, option

#: An ``Options`` field of this name is not passed to the module: it replaces
#: ``finetune.alpha`` (the weight of L_out in eq. 2) when fine-tuning with that loss.
ALPHA = "alpha"


@dataclass(frozen=True)
class LossSpec:
    """A background loss: its ``nn.Module`` class (built with ``reduction=...``, and the loss's
    own options); ``algorithm1``: a per-example loss of the background logits alone, which
    Algorithm 1 weights and ascends (eqs. 10-12); ``uses_id``: its ``forward(logits_bg,
    logits_in)`` also takes the ID logits; ``extra_class``: the model needs a (K+1)-th
    background output; ``score``: the OOD score that goes with it (``selectors.score: auto``);
    ``options``: a dataclass of its config options (``selectors.NAME.OPTION``, defaults and
    range checks in its fields, :func:`bgresample.options.option`): the module's keyword
    arguments, and optionally ``alpha``, which replaces ``finetune.alpha`` with this loss;
    ``embeddings``: the module gives the model a projection head (``add_head(model, seed)``)
    and its ``forward(emb_id, emb_bg, memory_id, memory_aux)`` takes the projected embeddings
    of the ID and background batches instead of logits (``hopfield``); ``section``: the name of
    its config section when not the loss's own (``selectors.SECTION``: the ``hopfield``
    section is the selector's)."""

    module: type[nn.Module]
    algorithm1: bool = False
    uses_id: bool = False
    extra_class: bool = False
    score: str = "msp"
    options: type | None = None
    embeddings: bool = False
    section: str | None = None

    def make_options(self, **values: Any) -> Any:
        """The ``options`` with these values (defaults filled in); ValueError names an unknown
        or out-of-range one, or options the module refuses together (e.g. m_in >= m_out)."""
        name = self.module.__name__
        opts = make_options(self.options, values, name, name)
        if opts is None:
            return None
        self.build(opts)
        return opts

    def build(self, opts: Any = None, **kwargs: Any) -> nn.Module:
        """The loss module with the options ``opts`` (None: the ``options`` defaults; ``alpha``
        is not the module's) and ``kwargs`` (e.g. ``reduction``)."""
        if self.options is not None:
            opts = self.options() if opts is None else opts
            own = {k: v for k, v in dataclasses.asdict(opts).items() if k != ALPHA}
            kwargs = {**own, **kwargs}
        return self.module(**kwargs)


@dataclass
class EnergyOptions:
    """``selectors.energy``: the options of ``finetune.loss=energy`` (Liu et al. 2020; their
    CIFAR-10 WRN margins are -25 and -7, which diverge on the embedded ``small_cnn``, whose ID
    and pool energies are both about -7 after pre-training). -16/-6, best on the validation
    split at 2 seeds, collapsed the ID accuracy on several seeds of the 5-seed study
    (docs/results.md), so these stay."""

    m_in: float = option(-12.0, doc="margin of the ID energies (penalised above it)")
    m_out: float = option(-4.0, doc="margin of the background energies (penalised below it)")
    alpha: float = option(
        0.1, NON_NEGATIVE, "replaces finetune.alpha with this loss (their lambda; 0.5 diverges)"
    )


@dataclass
class HopfieldOptions:
    """``selectors.hopfield-loss``: the options of ``finetune.loss=hopfield`` (Hofmann et al.
    2024), the authors' CIFAR values: beta 4, weight 0.5, head 256 -> 128 left untrained."""

    beta: float = option(4.0, POSITIVE, "inverse temperature of E_b (the authors' CIFAR one)")
    alpha: float = option(0.5, NON_NEGATIVE, "replaces finetune.alpha with this loss (theirs)")
    head_hidden: int = option(256, POSITIVE_INT, "hidden width of the projection head")
    head_dim: int = option(128, POSITIVE_INT, "embedding width of the projection head")
    train_head: bool = option(
        False, doc="fine-tune the projection head too (their code never updates it)"
    )


BACKGROUND_LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, spec: LossSpec) -> LossSpec:
    """Add a background loss under ``name``; ValueError for a taken name or a spec that is
    not a :class:`LossSpec` of an ``nn.Module`` class."""
    if not isinstance(spec, LossSpec) or not issubclass(spec.module, nn.Module):
        raise ValueError(f"loss {name!r}: expected a LossSpec of an nn.Module class")
    if spec.options is not None and not dataclasses.is_dataclass(spec.options):
        raise ValueError(f"loss {name!r}: options must be a dataclass")
    if name in BACKGROUND_LOSSES and BACKGROUND_LOSSES[name] != spec:
        raise ValueError(f"loss {name!r} is registered already")
    BACKGROUND_LOSSES[name] = spec
    return spec


def section_of(name: str) -> str:
    """The config section (``selectors.SECTION``) of the options of loss ``name``."""
    return BACKGROUND_LOSSES[name].section or name


def config_options() -> dict[str, type]:
    """``{section: options}`` of the losses with options (their ``selectors.SECTION``
    sections)."""
    return {section_of(n): s.options for n, s in BACKGROUND_LOSSES.items() if s.options is not None}


def algorithm1_losses() -> list[str]:
    """The losses Algorithm 1 can weight (``resample.loss``)."""
    return [n for n, s in BACKGROUND_LOSSES.items() if s.algorithm1]


register_loss("uniform", LossSpec(UniformityLoss, algorithm1=True))
register_loss("max_entropy", LossSpec(MaxEntropyLoss, algorithm1=True))
register_loss(
    "energy", LossSpec(EnergyMarginLoss, uses_id=True, score="energy", options=EnergyOptions)
)
register_loss("extra_class", LossSpec(ExtraClassLoss, extra_class=True, score="extra_class"))
register_loss(
    "hopfield",
    LossSpec(
        HopfieldBoostingLoss,
        score="hopfield",
        options=HopfieldOptions,
        embeddings=True,
        section="hopfield-loss",
    ),
)
