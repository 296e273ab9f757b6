"""Theorem 1 (eqs. 5-6), checked exactly on a discrete toy problem.

A free logit table v(x) (one row per discrete x) minimises the exact expected loss of eq. 2,
sum_x sum_y p(x, y) L_cls(v(x), y) + alpha sum_x q(x) L_uni(v(x)); its softmax must equal
f*_k(x) = c(x) p(k|x) + (1 - c(x)) / K with c(x) = p_X(x) / (p_X(x) + alpha q(x)).
"""

import pytest
import torch

from bgresample.losses import classification_loss, uniformity_loss

K = 3
# Joint p(x, y) over 6 discrete x values (rows) and K classes; sums to 1.
# x=0..2: ordinary ID points; x=3: small p_X; x=4: p_X = 0 (background only);
# x=5: q = 0 (ID only, full-support posterior so the optimum has finite logits).
P_XY = torch.tensor(
    [
        [0.20, 0.05, 0.05],
        [0.02, 0.15, 0.03],
        [0.05, 0.05, 0.10],
        [0.004, 0.001, 0.005],
        [0.0, 0.0, 0.0],
        [0.10, 0.12, 0.07],
    ],
    dtype=torch.float64,
)
Q_X = torch.tensor([0.10, 0.05, 0.20, 0.30, 0.35, 0.0], dtype=torch.float64)


def expected_loss(v: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 2 with exact expectations over the discrete p(x, y) and q(x)."""
    n_x = v.shape[0]
    logits = v.unsqueeze(1).expand(n_x, K, K).reshape(n_x * K, K)
    targets = torch.arange(K).repeat(n_x)
    cls = classification_loss(logits, targets, reduction="none").view(n_x, K)
    uni = uniformity_loss(v, reduction="none")
    return (P_XY * cls).sum() + alpha * (Q_X * uni).sum()


def theorem1_optimum(alpha: float) -> torch.Tensor:
    """Eqs. 5-6."""
    p_x = P_XY.sum(dim=1)
    posterior = torch.where(p_x[:, None] > 0, P_XY / p_x.clamp_min(1e-300)[:, None], 0.0)
    c = p_x / (p_x + alpha * Q_X)
    return c[:, None] * posterior + (1 - c[:, None]) / K


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_minimiser_matches_eqs_5_6(alpha):
    assert P_XY.sum().item() == pytest.approx(1.0)
    assert Q_X.sum().item() == pytest.approx(1.0)
    v = torch.nn.Parameter(torch.zeros(P_XY.shape[0], K, dtype=torch.float64))
    optimiser = torch.optim.LBFGS(
        [v], lr=1.0, max_iter=500, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = expected_loss(v, alpha)
        loss.backward()
        return loss

    for _ in range(5):
        optimiser.step(closure)

    learned = torch.softmax(v.detach(), dim=-1)
    expected = theorem1_optimum(alpha)
    assert torch.allclose(learned, expected, atol=1e-3, rtol=0)
    # Background-only x is mapped to the uniform distribution; MSP falls toward 1/K there.
    assert torch.allclose(learned[4], torch.full((K,), 1.0 / K, dtype=torch.float64), atol=1e-3)
    assert learned.max(dim=-1).values[3] < learned.max(dim=-1).values[0]


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_eq9_gradient_vanishes_at_optimum(alpha):
    """The analytic optimum has zero gradient (eq. 9) and is not improved by perturbations."""
    v_star = torch.log(theorem1_optimum(alpha)).requires_grad_(True)
    loss = expected_loss(v_star, alpha)
    (grad,) = torch.autograd.grad(loss, v_star)
    assert grad.abs().max().item() < 1e-12
    noise = 1e-2 * torch.randn(v_star.shape, generator=torch.Generator().manual_seed(0))
    assert expected_loss(v_star.detach() + noise.double(), alpha) > loss.detach()
