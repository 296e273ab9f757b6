"""Learned background weights of the adversarial resampling (paper Section B, eqs. 10-12).

One unconstrained parameter omega_i per background item, w_i = softplus(omega_i) (Section C),
omega initialised to 0. The training loop draws items with p_i (eq. 11), weights their detached
uniformity losses by r_i (eq. 12) and ascends ``grad_omega``. The weight gradient is analytic:
it needs only the per-example losses, never a second backward pass through the network.

Its expectation over the draws equals the gradient of sum_i w_i L_i / sum_j w_j only at eps = 0:
for eps > 0 the draw distribution p also depends on w and that (score-function) term is not in
the mini-batch gradient of Algorithm 1; at eps = 1, r_i = 1 and the gradient is exactly zero.

Numerics: w, the sums and the gradient are computed in float64. softplus underflows for very
negative omega (to 0 below about -745 in float64), which would make w^(eps-1) infinite, so w is
clamped below at ``W_FLOOR``. The floor only guards values: the gradient keeps the softplus
derivative sigmoid(omega), so a floored item can still climb back.
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from bgresample.errors import UserError

W_FLOOR = 1e-12
"""Smallest weight value; w = max(softplus(omega), W_FLOOR)."""

_FORMAT = "bgresample.BackgroundWeights"


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise UserError(f"sampler coefficient eps must be in [0, 1], got {eps}")
    return eps


class BackgroundWeights(nn.Module):
    """Weights w_i = softplus(omega_i) over a background pool of ``num_items`` items.

    ``eps`` is the sampler coefficient of eqs. 10-12: 0 draws uniformly and reweights fully,
    1 draws by importance (p proportional to w) with r_i = 1. Table 1 uses 0.5.
    """

    def __init__(self, num_items: int, eps: float = 0.5) -> None:
        super().__init__()
        if num_items < 1:
            raise UserError(f"the background pool must hold at least 1 item, got {num_items}")
        self.omega = nn.Parameter(torch.zeros(num_items, dtype=torch.float32))
        self.eps = eps

    @property
    def eps(self) -> float:
        """Sampler coefficient in [0, 1]."""
        return self._eps

    @eps.setter
    def eps(self, value: float) -> None:
        self._eps = _check_eps(value)

    def __len__(self) -> int:
        return self.omega.numel()

    def _w64(self) -> Tensor:
        return F.softplus(self.omega.detach().double()).clamp_min(W_FLOOR)

    @staticmethod
    def _pow(w: Tensor, exponent: float) -> Tensor:
        # exponent 0 gives exact ones, exponent 1 the values themselves.
        if exponent == 0.0:
            return torch.ones_like(w)
        if exponent == 1.0:
            return w
        return w.pow(exponent)

    def weights(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """w = softplus(omega), floored at W_FLOOR, detached."""
        return self._w64().to(dtype)

    def sums(self) -> tuple[Tensor, Tensor]:
        """(S_eps, S_1) = (sum_j w_j^eps, sum_j w_j) as 0-d float64 tensors."""
        w = self._w64()
        return self._pow(w, self.eps).sum(), w.sum()

    def probs(self) -> Tensor:
        """Eq. 11: p_i = w_i^eps / sum_j w_j^eps, float64."""
        w_eps = self._pow(self._w64(), self.eps)
        return w_eps / w_eps.sum()

    def ratios(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Eq. 12: r_i = (sum_j w_j^eps / sum_j w_j) * w_i^(1-eps) for ``indices``."""
        w = self._w64()
        scale = self._pow(w, self.eps).sum() / w.sum()
        return (scale * self._pow(w[indices], 1.0 - self.eps)).to(dtype)

    def grad_omega(self, indices: Tensor, losses: Tensor) -> Tensor:
        """Exact d l_out / d omega for l_out = (1/B) sum_b r_{i_b} L_b (eqs. 10, 12).

        ``losses`` are the detached per-example uniformity losses of the drawn items
        ``indices`` (repeats allowed). r depends on every w through S_eps and S_1, so every
        omega gets a (dense) gradient; drawn items also get a sparse one:

            dl/dw_k = A (eps w_k^(eps-1) / S_1 - S_eps / S_1^2)
                      + (S_eps / S_1) (1 - eps) w_k^(-eps) (1/B) sum_{b: i_b = k} L_b,
            A = (1/B) sum_b L_b w_{i_b}^(1-eps),   dw_k/domega_k = sigmoid(omega_k).

        Returned as float32, shape [N]. Ascend it (Algorithm 1).
        """
        if indices.ndim != 1 or losses.shape != indices.shape:
            raise ValueError(
                f"indices and losses must be 1-d of equal length, got shapes "
                f"{tuple(indices.shape)} and {tuple(losses.shape)}"
            )
        eps = self.eps
        batch = indices.numel()
        w = self._w64()
        loss = losses.detach().to(device=w.device, dtype=torch.float64) / batch
        s_eps, s_1 = self._pow(w, eps).sum(), w.sum()

        a = (loss * self._pow(w[indices], 1.0 - eps)).sum()
        grad = torch.zeros_like(w) - a * s_eps / s_1**2
        if eps > 0.0:
            grad += (a * eps / s_1) * self._pow(w, eps - 1.0)
        if eps < 1.0:
            sparse = torch.zeros_like(w).index_add_(0, indices, loss)
            grad += (s_eps / s_1 * (1.0 - eps)) * self._pow(w, -eps) * sparse
        grad *= torch.sigmoid(self.omega.detach().double())
        return grad.float()

    def ess(self) -> float:
        """Effective sample size of p (eq. 11): 1 / sum_i p_i^2; N for uniform weights."""
        return 1.0 / self.probs().square().sum().item()

    def stats(self) -> dict[str, float]:
        """min / median / max of w and the ESS of p, for progress bars and logs."""
        w = self._w64()
        return {
            "w_min": w.min().item(),
            "w_median": w.median().item(),
            "w_max": w.max().item(),
            "ess": self.ess(),
        }

    def get_extra_state(self) -> dict[str, float]:
        """Puts eps in ``state_dict`` (key ``_extra_state``) next to omega."""
        return {"eps": self.eps}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.eps = state["eps"]

    def save(self, path: str | os.PathLike) -> None:
        """Write omega (safetensors) with eps as metadata; atomic (tmp file, fsync, rename)."""
        path = Path(path)
        payload = safetensors_bytes(
            {"omega": self.omega.detach().float().cpu().contiguous()},
            metadata={"format": _FORMAT, "eps": repr(self.eps)},
        )
        tmp = Path(f"{path}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu"
    ) -> "BackgroundWeights":
        """Read a file written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"background weights file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                omega = handle.get_tensor("omega") if "omega" in handle.keys() else None
        except Exception as exc:  # safetensors raises its own error types
            raise UserError(f"{path} is not a safetensors file: {exc}") from exc
        if omega is None or omega.ndim != 1 or "eps" not in metadata:
            raise UserError(
                f"{path} is not a background weights file (expected a 1-d tensor 'omega' "
                "and 'eps' metadata, as written by BackgroundWeights.save)"
            )
        try:
            eps = float(metadata["eps"])
        except ValueError as exc:
            raise UserError(f"{path}: eps metadata must be a number in [0, 1]: {exc}") from exc
        module = cls(omega.numel(), eps=eps)
        with torch.no_grad():
            module.omega.copy_(omega)
        return module.to(device)
