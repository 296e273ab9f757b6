"""NTOM: on a pool whose MSP is known per item, it skips exactly the most ID-like q fraction
of the candidates and keeps the next M = k."""

import torch
from torch import Tensor, nn

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.rng import generator
from bgresample.runtime.accel import Accel
from bgresample.selectors import NTOM, SelectionContext
from bgresample.selectors.ntom import quantile_pick

N = 80


class PixelModel(nn.Module):
    """features = the first pixel (normalised); logits = [4 f, 0]: MSP grows with the pixel."""

    feature_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[4.0], [0.0]]))
            self.fc.bias.zero_()

    def features(self, x: Tensor) -> Tensor:
        return x[:, 0, 0, 0:1]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def _ctx(gamma: float = 0.125) -> SelectionContext:
    data = torch.zeros(N, 3, 32, 32, dtype=torch.uint8)
    order = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    data[:, 0, 0, 0] = 128 + order.to(torch.uint8)  # item i has MSP rank order[i]
    train = LabeledImages(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4).long())
    return SelectionContext(
        pool=ImageArray(data),
        train=train,
        accel=Accel(torch.device("cpu")),
        seed=3,
        gamma=gamma,
        batch_size=8,
    ), order


def test_quantile_pick():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6])  # by score: 1,5,3,7,2,4,6,0
    assert quantile_pick(scores, 0.25, 3).tolist() == [3, 7, 2]  # skip 0.9, 0.8; keep next 3
    assert quantile_pick(scores, 0.0, 2).tolist() == [1, 5]
    assert quantile_pick(scores, 0.9, 4).tolist() == [2, 4, 6, 0]  # skip capped at C - m


def test_ntom_whole_pool_as_candidates():
    ctx, order = _ctx()
    ntom = NTOM(ctx, candidates=8.0, quantile=0.125)  # C = 8 k = N
    got = ntom.select_epoch(PixelModel(), epoch=0)
    # rank 0 = highest pixel = most ID-like: skip ranks 70..79, keep ranks 60..69
    expected = torch.nonzero((order >= 60) & (order < 70)).flatten()
    assert torch.equal(got, expected)
    assert ntom.forwards == {"setup": 0, "during": N, "id": 0}


def test_ntom_random_candidates():
    ctx, order = _ctx()
    ntom = NTOM(ctx, candidates=4.0, quantile=0.125)  # C = 40: skip 5, keep k = 10
    cand = torch.randperm(N, generator=generator(ctx.seed, NTOM.streams["candidates"], 2))[:40]
    by_msp = cand[order[cand].argsort(descending=True)]
    got = ntom.select_epoch(PixelModel(), epoch=2)
    assert torch.equal(got, by_msp[5:15].sort().values)
    assert len(got) == ctx.budget == 10
