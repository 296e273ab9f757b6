"""Losses of the training objective (eq. 2): L_cls (eq. 3) and the background losses (eq. 4),
as functions and as ``nn.Module`` objects."""

from bgresample.losses.energy import (
    energy_in_term,
    energy_margin_loss,
    energy_out_term,
    free_energy,
)
from bgresample.losses.extra_class import add_background_class, extra_class_loss
from bgresample.losses.hopfield import (
    HopfieldBoostingLoss,
    HopfieldHead,
    add_projection_head,
)
from bgresample.losses.modules import (
    EnergyMarginLoss,
    ExtraClassLoss,
    MaxEntropyLoss,
    UniformityLoss,
)
from bgresample.losses.registry import (
    BACKGROUND_LOSSES,
    EnergyOptions,
    HopfieldOptions,
    LossSpec,
    algorithm1_losses,
    register_loss,
    section_of,
)
from bgresample.losses.uniformity import (
    OUTLIER_LOSSES,
    Reduction,
    classification_loss,
    get_outlier_loss,
    max_entropy_loss,
    uniformity_loss,
)

#: Background losses of fine-tuning (``finetune.loss``): the per-example losses of eq. 4, the
#: energy margins (which also take the ID logits), the extra (K+1)-th background class and
#: Hopfield Boosting's energy on projected embeddings.
FINETUNE_LOSSES = tuple(BACKGROUND_LOSSES)

__all__ = [
    "BACKGROUND_LOSSES",
    "EnergyOptions",
    "FINETUNE_LOSSES",
    "HopfieldBoostingLoss",
    "HopfieldHead",
    "HopfieldOptions",
    "LossSpec",
    "OUTLIER_LOSSES",
    "EnergyMarginLoss",
    "ExtraClassLoss",
    "MaxEntropyLoss",
    "Reduction",
    "UniformityLoss",
    "add_background_class",
    "add_projection_head",
    "algorithm1_losses",
    "classification_loss",
    "energy_in_term",
    "energy_margin_loss",
    "energy_out_term",
    "extra_class_loss",
    "free_energy",
    "get_outlier_loss",
    "max_entropy_loss",
    "register_loss",
    "section_of",
    "uniformity_loss",
]
