"""bgresample: outlier-aware classifiers trained with adversarially resampled background data.

Implements Li & Vasconcelos, "Background Data Resampling for Outlier-Aware Classification",
CVPR 2020, as a library for any training loop (below) and as the ``bgresample`` command line.

The method, for your own model, ID data and background pool::

    from bgresample import BackgroundPool, BackgroundResampler, OODMetrics, UniformityLoss, msp

    pool = BackgroundPool(background_images)          # a tensor N x ... or any Dataset
    resampler = BackgroundResampler(len(pool))        # Algorithm 1's weights and sampler
    uniformity = UniformityLoss(reduction="none")     # eq. 4 per background image
    for x, y in id_loader:
        idx = resampler.draw(len(x))                  # eq. 11
        logits = model(torch.cat([x, pool[idx]]))
        per_item = uniformity(logits[len(x):])
        loss = F.cross_entropy(logits[: len(x)], y) + 0.5 * resampler.weighted_loss(idx, per_item)
        opt.zero_grad(); loss.backward(); opt.step()
        resampler.step(idx, per_item)                 # weight ascent, no second backward
    subset = resampler.select(gamma=0.1)              # the 10% to fine-tune on

The weight step's lr = 100 (Table 1) suits per-item losses of order 1, as eq. 4's; for losses of
another scale (e.g. the energy margins) pass ``BackgroundResampler(..., step_scale="mean")``.
``Detector`` wraps a model and a score; ``OODMetrics.pytorch_ood()`` takes pytorch-ood's
conventions. ``load_checkpoint(path)`` gives the model a bgresample checkpoint holds (one that
``bgresample convert --authors`` made from the authors' weights included). See
``examples/own_training_loop.py`` and ``docs/api.md``.
"""

import os
from typing import Any

from torch import nn

from bgresample.detector import Detector
from bgresample.losses import (
    EnergyMarginLoss,
    ExtraClassLoss,
    MaxEntropyLoss,
    UniformityLoss,
    add_background_class,
    classification_loss,
    energy_margin_loss,
    extra_class_loss,
    max_entropy_loss,
    uniformity_loss,
)
from bgresample.metrics import (
    OODMetrics,
    aupr_in,
    aupr_out,
    auroc,
    evaluate_protocol,
    fpr_at_tpr,
    ood_metrics,
    paired_difference,
)
from bgresample.resampling import (
    BackgroundPool,
    BackgroundResampler,
    BackgroundWeights,
    WeightedSampler,
    composition,
    select,
)
from bgresample.scores import SCORES, energy, extra_class, get_score, max_logit, msp, odin

__version__ = "0.2.0"


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The model a bgresample ``.safetensors`` checkpoint holds, in eval mode, and its metadata
    (``model_name``, ``num_classes``, ``normalization``, ...): the model named in the metadata
    is built and the weights loaded (:func:`bgresample.checkpoint.load_checkpoint`).
    ``FileNotFoundError`` for a missing file, ``ValueError`` for one that is not a bgresample
    model checkpoint."""
    from bgresample.checkpoint import load_checkpoint as load  # not at import: safetensors, models

    return load(path)


__all__ = [
    "SCORES",
    "BackgroundPool",
    "BackgroundResampler",
    "BackgroundWeights",
    "Detector",
    "EnergyMarginLoss",
    "ExtraClassLoss",
    "MaxEntropyLoss",
    "OODMetrics",
    "UniformityLoss",
    "WeightedSampler",
    "__version__",
    "add_background_class",
    "auroc",
    "aupr_in",
    "aupr_out",
    "classification_loss",
    "composition",
    "energy",
    "energy_margin_loss",
    "evaluate_protocol",
    "extra_class",
    "extra_class_loss",
    "fpr_at_tpr",
    "get_score",
    "load_checkpoint",
    "max_entropy_loss",
    "max_logit",
    "msp",
    "odin",
    "ood_metrics",
    "paired_difference",
    "select",
    "uniformity_loss",
]
