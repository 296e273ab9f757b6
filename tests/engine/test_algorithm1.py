"""Algorithm 1: the analytic weight gradient and the direction of one step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bgresample import BackgroundResampler, UniformityLoss
from bgresample.engine.resample import algorithm1_step
from bgresample.losses import uniformity_loss
from bgresample.resampling import BackgroundWeights


class TinyNet(nn.Module):
    """A small conv net without BatchNorm, so train and eval modes agree."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4 * 8 * 8, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("eps", [0.0, 0.25, 0.5, 1.0])
def test_weight_gradient_equals_naive_autograd_through_network(eps):
    torch.manual_seed(0)
    n_pool, batch = 40, 12
    pool = torch.randn(n_pool, 3, 32, 32)
    net = TinyNet()
    weights = BackgroundWeights(n_pool, eps=eps)
    with torch.no_grad():
        weights.omega.copy_(torch.randn(n_pool))
    idx = torch.tensor([0, 3, 3, 7, 11, 11, 11, 20, 25, 30, 39, 5])
    assert len(idx) == batch

    # Naive: the outlier term written out, with r depending on all N weights through the sums,
    # differentiated by autograd through the network's per-example losses.
    omega = weights.omega.detach().double().clone().requires_grad_(True)
    w = F.softplus(omega)
    s_eps, s_1 = (w**eps).sum(), w.sum()
    r = s_eps / s_1 * w[idx] ** (1 - eps)
    per_example = uniformity_loss(net(pool[idx]), reduction="none").double()
    l_out = (r * per_example).mean()
    (naive,) = torch.autograd.grad(l_out, omega)

    ours = weights.grad_omega(idx, per_example.detach().float())
    torch.testing.assert_close(ours.double(), naive, rtol=1e-5, atol=1e-8)
    if eps < 1:
        assert torch.count_nonzero(naive) == n_pool  # every omega gets a (dense) gradient
    else:
        assert torch.count_nonzero(naive) == 0  # eps = 1: r_i = 1, l_out does not depend on w


def test_one_step_raises_hardest_item_and_lowers_classifier_loss():
    torch.manual_seed(1)
    k, n = 4, 16
    net = TinyNet(k)
    x_id = torch.randn(n, 3, 32, 32)
    y_id = torch.randint(0, k, (n,))
    pool = torch.randn(30, 3, 32, 32)
    pool[7] *= 20  # an item far from uniform predictions: the largest L_uni
    bidx = torch.arange(0, 30, 2)[:n]
    bidx[0] = 7
    resampler = BackgroundResampler(30, eps=0.5, lr=100.0, momentum=0.9)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    with torch.no_grad():
        per = uniformity_loss(net(pool[bidx]), reduction="none")
    assert int(per.argmax()) == 0
    w_before = resampler.weights().clone()
    fresh = BackgroundResampler(30, eps=0.5)  # the weights of theta^(t)

    def total_loss() -> float:
        with torch.no_grad():
            logits = net(torch.cat([x_id, pool[bidx]]))
            lu = uniformity_loss(logits[n:], reduction="none")
            return float(F.cross_entropy(logits[:n], y_id) + 0.5 * fresh.weighted_loss(bidx, lu))

    before = total_loss()
    algorithm1_step(net, resampler, opt, x_id, y_id, pool[bidx], bidx, 0.5, UniformityLoss("none"))
    change = resampler.weights() - w_before
    assert change[7] > 0
    assert int(change.argmax()) == 7  # the hardest drawn item gains the most weight
    assert change[1] < 0  # an item that was not drawn loses weight (dense part of the gradient)
    assert total_loss() < before  # the classifier loss at the old weights went down
