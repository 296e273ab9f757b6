"""Mahalanobis score on penultimate features (without input preprocessing or feature ensembles).

Lee, Lee, Lee and Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks", NeurIPS 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MahalanobisState:
    """Class means ``(C, D)`` and the shared (tied) precision matrix ``(D, D)``, float64.

    ``classes[c]`` is the label of row ``c`` of ``means`` (the labels seen when fitting).
    """

    means: Tensor
    precision: Tensor
    classes: Tensor

    def to(self, device: torch.device | str) -> MahalanobisState:
        return MahalanobisState(
            self.means.to(device), self.precision.to(device), self.classes.to(device)
        )


def fit_mahalanobis(features: Tensor, labels: Tensor) -> MahalanobisState:
    """Class-conditional Gaussians with a tied covariance, fitted by maximum likelihood.

    ``mu_c`` = mean of the features of class ``c``; ``Sigma = (1/N) sum_c sum_{i: y_i = c}
    (f_i - mu_c)(f_i - mu_c)^T`` (eq. in Sec. 2 of the paper); the precision is its
    pseudo-inverse (as sklearn's ``EmpiricalCovariance``, which the authors' code uses), so a
    singular covariance (fewer items than dimensions) is handled.
    """
    if features.ndim != 2 or len(features) != len(labels) or len(features) == 0:
        raise ValueError(
            f"need features (N, D) and labels (N,) with N >= 1, got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    f = features.detach().double()
    classes, inverse = torch.unique(labels.detach().to(f.device).long(), return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(classes)).double()
    sums = torch.zeros(len(classes), f.shape[1], dtype=f.dtype, device=f.device)
    means = sums.index_add_(0, inverse, f) / counts[:, None]
    centred = f - means[inverse]
    cov = centred.T @ centred / len(f)
    precision = torch.linalg.pinv(cov, hermitian=True)
    return MahalanobisState(means, precision, classes)


def mahalanobis_distances(features: Tensor, state: MahalanobisState) -> Tensor:
    """Squared Mahalanobis distances ``(f - mu_c)^T Sigma^-1 (f - mu_c)``, shape ``(N, C)``."""
    s = state.to(features.device)
    f = features.detach().double()
    fp = f @ s.precision
    d = (fp * f).sum(1, keepdim=True) - 2.0 * fp @ s.means.T
    d = d + ((s.means @ s.precision) * s.means).sum(1)[None, :]
    return d.clamp_min(0.0)


def mahalanobis(features: Tensor, state: MahalanobisState) -> Tensor:
    """``M(x) = max_c -(f(x) - mu_c)^T Sigma^-1 (f(x) - mu_c)`` (eq. 2 of the paper), float64;
    higher = more ID.

    This is minus the squared Mahalanobis distance to the closest class mean, which ranks items
    exactly as minus the distance itself, so the OOD metrics are those of ``-min_c distance``.
    """
    return -mahalanobis_distances(features, state).amin(dim=1)
