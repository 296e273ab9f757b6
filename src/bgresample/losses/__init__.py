"""Losses of the training objective (eq. 2): L_cls (eq. 3) and the background losses (eq. 4)."""

from bgresample.losses.uniformity import (
    OUTLIER_LOSSES,
    Reduction,
    classification_loss,
    get_outlier_loss,
    max_entropy_loss,
    uniformity_loss,
)

__all__ = [
    "OUTLIER_LOSSES",
    "Reduction",
    "classification_loss",
    "get_outlier_loss",
    "max_entropy_loss",
    "uniformity_loss",
]
