"""``poem``: outlier mining by posterior sampling (Ming, Fan & Li, "POEM: Out-of-Distribution
Detection with Posterior Sampling", ICML 2022).

A Bayesian linear regression on penultimate features phi(x) (L2-normalised, with a constant 1
appended) models the ID/outlier boundary, with targets -1 for ID and +1 for outliers: prior
w ~ N(0, prior_var I), likelihood y ~ N(w . phi, noise_var). Every epoch: Thompson-sample w from
the posterior, score a random candidate set of the pool by w . phi, keep the k candidates closest
to the boundary (smallest |w . phi|), then update the posterior with the features of the kept
outliers (+1) and of as many random ID training images (-1), computed by the same model. Cost:
the candidates' forward passes (plus the ID ones, counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.options import AT_LEAST_ONE, POSITIVE, option
from bgresample.selectors.base import SelectionContext, Selector
from bgresample.selectors.registry import register_selector


class BayesianLinearRegression:
    """Conjugate Bayesian linear regression with known noise, updated recursively (float64).

    Posterior after data (Phi, y): precision A = I / prior_var + Phi^T Phi / noise_var, mean
    A^-1 Phi^T y / noise_var; sequential updates equal one update with all the data.
    """

    def __init__(self, dim: int, prior_var: float = 1.0, noise_var: float = 1.0) -> None:
        if prior_var <= 0 or noise_var <= 0:
            raise ValueError(
                f"prior_var and noise_var must be positive, got {prior_var}, {noise_var}"
            )
        self.noise_var = noise_var
        self.precision = torch.eye(dim, dtype=torch.float64) / prior_var
        self.b = torch.zeros(dim, dtype=torch.float64)

    def update(self, phi: Tensor, y: Tensor) -> None:
        """Absorb observations ``phi`` ``(n, dim)`` with targets ``y`` ``(n,)``."""
        phi, y = phi.double(), y.double()
        self.precision += phi.T @ phi / self.noise_var
        self.b += phi.T @ y / self.noise_var

    def mean(self) -> Tensor:
        return torch.cholesky_solve(self.b[:, None], torch.linalg.cholesky(self.precision))[:, 0]

    def covariance(self) -> Tensor:
        return torch.cholesky_inverse(torch.linalg.cholesky(self.precision))

    def sample(self, generator: torch.Generator) -> Tensor:
        """One w ~ N(mean, A^-1): mean + L^-T z with A = L L^T and z ~ N(0, I)."""
        chol = torch.linalg.cholesky(self.precision)
        z = torch.randn(len(self.b), 1, dtype=torch.float64, generator=generator)
        noise = torch.linalg.solve_triangular(chol.T, z, upper=True)[:, 0]
        return self.mean() + noise

    def state_dict(self) -> dict[str, Tensor]:
        return {"precision": self.precision, "b": self.b}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.precision = state["precision"].clone()
        self.b = state["b"].clone()


def design(features: Tensor) -> Tensor:
    """phi(x): L2-normalised features with a constant 1 appended (the regression's bias)."""
    f = F.normalize(features.double(), dim=1)
    return torch.cat([f, torch.ones(len(f), 1, dtype=torch.float64)], dim=1)


@register_selector
class POEM(Selector):
    """Thompson-sampled boundary outliers, refreshed every background epoch."""

    @dataclass
    class Options:
        candidates: float = option(4.0, AT_LEAST_ONE, "candidates per background epoch, x k")
        prior_var: float = option(1.0, POSITIVE, "Bayesian linear regression prior N(0, v I)")
        noise_var: float = option(1.0, POSITIVE, "and its noise variance")

    name = "poem"
    refresh = "epoch"
    needs = frozenset({"model", "features"})
    streams = {"candidates": 202, "thompson": 203, "id": 204}
    summary_line = "posterior-sampled boundary outliers (Ming et al. 2022)"

    def __init__(self, ctx: SelectionContext, **options: float) -> None:
        super().__init__(ctx, **options)
        self.n_candidates = min(len(ctx.pool), round(self.opts.candidates * ctx.budget))
        self.prior_var, self.noise_var = self.opts.prior_var, self.opts.noise_var
        self.blr: BayesianLinearRegression | None = None

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        ctx, k = self.ctx, self.ctx.budget
        if self.blr is None:
            self.blr = BayesianLinearRegression(
                model.feature_dim + 1, self.prior_var, self.noise_var
            )
        cand = self.candidates(self.n_candidates, "candidates", epoch)
        feats, _ = self.outputs(model, cand)
        phi = design(feats)
        w = self.blr.sample(self.rng("thompson", epoch))
        keep = (phi @ w).abs().argsort(stable=True)[:k]
        n_id = min(len(ctx.train), k)
        gen = self.rng("id", epoch)
        id_idx = torch.randperm(len(ctx.train), generator=gen)[:n_id]
        id_feats, _ = self.outputs(model, id_idx, ctx.train)
        self.blr.update(
            torch.cat([design(id_feats), phi[keep]]),
            torch.cat([-torch.ones(n_id), torch.ones(len(keep))]),
        )
        return cand[keep].sort().values

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.blr is not None:
            state["blr"] = self.blr.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "blr" in state:
            blr = BayesianLinearRegression(len(state["blr"]["b"]), self.prior_var, self.noise_var)
            blr.load_state_dict(state["blr"])
            self.blr = blr
