"""Deep nearest-neighbour (KNN) score on L2-normalised penultimate features.

Sun, Ming, Zhu and Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: The paper's k for CIFAR-10 with the full training set.
DEFAULT_K = 50


@dataclass(frozen=True)
class KNNState:
    """The L2-normalised ID training features ``(N_train, D)``: the neighbour bank."""

    bank: Tensor

    def to(self, device: torch.device | str) -> KNNState:
        return KNNState(self.bank.to(device))


def l2_normalize(features: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (float32; an all-zero row stays zero)."""
    return F.normalize(features.detach().float(), dim=-1)


def fit_knn(features: Tensor, labels: Tensor | None = None) -> KNNState:
    """The bank of normalised ID training features (labels are not used)."""
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"need features (N, D) with N >= 1, got {tuple(features.shape)}")
    return KNNState(l2_normalize(features))


def knn(features: Tensor, state: KNNState, k: int = DEFAULT_K, chunk: int = 1024) -> Tensor:
    """``-||z - z_(k)||_2``: minus the distance from the normalised feature ``z`` to its k-th
    nearest normalised training feature (``k`` capped at the bank size); higher = more ID.

    Exact (brute force): ``torch.cdist`` against the whole bank, ``chunk`` queries at a time.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bank = state.bank.to(features.device)
    k = min(k, len(bank))
    z = l2_normalize(features)
    out = [
        torch.cdist(z[i : i + chunk], bank).topk(k, dim=1, largest=False).values[:, -1]
        for i in range(0, len(z), chunk)
    ]
    return -torch.cat(out) if out else z.new_empty(0)
