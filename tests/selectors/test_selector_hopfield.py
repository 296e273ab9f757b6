"""Hopfield Boosting: the boosting energy and its sampling rule on hand-made embeddings, one
epoch of the selector reproduced by hand, fine-tuning with it (and resuming exactly), and the
same choices on both ranks of a 2-process gloo run."""

import math
from pathlib import Path

import pytest
import torch
from selector_toys import TwoPixelModel, random_images
from torch import Tensor

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.rng import generator
from bgresample.runtime.accel import Accel
from bgresample.selectors import HopfieldBoosting, SelectionContext
from bgresample.selectors.hopfield import boosting_probabilities, boundary_energy

ANGLES = [0, 15, 30, 45, 60, 75, 90]  # degrees from the ID pattern towards the AUX one


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _paper_energy(q: Tensor, x: Tensor, o: Tensor, beta: float) -> Tensor:
    """E_b as the paper writes it, with log-sum-exp: -2 lse((X || O)^T xi) + lse(X^T xi) +
    lse(O^T xi), lse(beta, z) = beta^-1 log sum exp(beta z)."""

    def lse(s: Tensor) -> Tensor:
        return torch.logsumexp(beta * s, dim=1) / beta

    q, x, o = (torch.nn.functional.normalize(t.double(), dim=1) for t in (q, x, o))
    return -2 * lse(q @ torch.cat([x, o]).T) + lse(q @ x.T) + lse(q @ o.T)


def test_boundary_candidates_get_the_most_sampling_mass():
    # ID patterns at 0 degrees, AUX patterns at 90: the boundary is at 45 degrees
    x = torch.tensor([_unit(0), _unit(-5), _unit(5)])
    o = torch.tensor([_unit(90), _unit(85), _unit(95)])
    q = torch.tensor([_unit(a) for a in ANGLES])
    beta = 4.0
    p = boosting_probabilities(q, x, o, beta)
    assert p.sum().item() == pytest.approx(1.0)
    assert int(p.argmax()) == ANGLES.index(45)
    # mass falls off monotonically on both sides of the boundary, and symmetrically
    assert all(p[i] < p[i + 1] for i in range(3)) and all(p[i] > p[i + 1] for i in range(3, 6))
    for a, b in ((0, 90), (15, 75), (30, 60)):
        assert p[ANGLES.index(a)].item() == pytest.approx(p[ANGLES.index(b)].item(), rel=1e-9)
    # the energy is the paper's E_b (|X| = |O|), maximal -2 log(2) / beta on the boundary
    e = boundary_energy(q, x, o, beta)
    assert torch.allclose(e, _paper_energy(q, x, o, beta), atol=1e-12)
    assert e.max().item() == pytest.approx(-2 * math.log(2) / beta, abs=1e-12)
    # the sampling rule: p proportional to exp(beta E_b)
    assert torch.allclose(p, torch.softmax(beta * e, dim=0), atol=1e-15)
    # a larger beta concentrates the mass on the boundary
    sharp = boosting_probabilities(q, x, o, 16.0)
    assert sharp[ANGLES.index(45)] > p[ANGLES.index(45)]
    assert sharp[0] / sharp[ANGLES.index(45)] < p[0] / p[ANGLES.index(45)]


def test_closed_form_with_single_patterns():
    # one pattern per memory: Delta = x.xi - o.xi and exp(beta E_b) = 1 / (4 cosh^2(beta Delta/2))
    x, o = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    q = torch.tensor([_unit(a) for a in ANGLES])
    beta = 3.0
    delta = (q @ x.T - q @ o.T)[:, 0].double()
    expected = 1 / (4 * torch.cosh(beta * delta / 2) ** 2)
    got = torch.exp(beta * boundary_energy(q, x, o, beta))
    assert torch.allclose(got, expected, atol=1e-12)


def test_exclude_self_leaves_each_candidate_out_of_its_own_memory():
    g = torch.Generator().manual_seed(1)
    aux, ids = torch.randn(6, 3, generator=g), torch.randn(4, 3, generator=g)
    beta = 2.0
    got = boundary_energy(aux, ids, aux, beta, exclude_self=True)
    for i in range(6):
        others = torch.cat([aux[:i], aux[i + 1 :]])
        e = boundary_energy(aux[i : i + 1], ids, others, beta)
        assert got[i].item() == pytest.approx(e.item(), abs=1e-12)
    with pytest.raises(ValueError, match="exclude_self"):
        boundary_energy(aux[:2], ids, aux, beta, exclude_self=True)


def test_one_epoch_samples_candidates_by_their_boosting_weight():
    g = torch.Generator().manual_seed(0)
    pool = ImageArray(random_images(100, g))
    train = LabeledImages(random_images(30, g), torch.zeros(30, dtype=torch.long))
    ctx = SelectionContext(pool, train, Accel(torch.device("cpu")), seed=5, gamma=0.1, batch_size=4)
    sel = HopfieldBoosting(ctx, candidates=4.0, beta=4.0)
    got = sel.select_epoch(TwoPixelModel(), epoch=2)

    def feats(data: Tensor, idx: Tensor) -> Tensor:
        return (data[idx, 0, 0, :2].float() / 255 - 0.5) / 0.25

    cand = torch.randperm(100, generator=generator(5, HopfieldBoosting.streams["candidates"], 2))[
        :40
    ]
    id_idx = torch.randperm(30, generator=generator(5, HopfieldBoosting.streams["id"], 2))[:30]
    aux = feats(pool.data, cand)
    p = boosting_probabilities(aux, feats(train.data, id_idx), aux, 4.0, exclude_self=True)
    draws = torch.multinomial(
        p, 10, replacement=True, generator=generator(5, HopfieldBoosting.streams["sample"], 2)
    )
    assert torch.equal(got, cand[draws].sort().values)
    assert len(got) == 10 and len(set(got.tolist())) <= 10  # k draws: at most k distinct items
    assert sel.forwards == {"setup": 0, "during": 40, "id": 30}


DDP_SCRIPT = """
import sys

import torch

from bgresample import dist
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.runtime.accel import Accel
from bgresample.models import create_model
from bgresample.selectors import SelectionContext, build_selector

info = dist.init("cpu")
g = torch.Generator().manual_seed(0)
img = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
train = LabeledImages(img(40), torch.arange(40) % 2)
pool = ImageArray(img(120))
ctx = SelectionContext(pool, train, Accel(torch.device("cpu")), 7, 0.1, 4, score_batch_size=16)
sel = build_selector("hopfield", ctx, {"hopfield": {"candidates": 3.0, "beta": 4.0}})
torch.manual_seed(0)
model = create_model("small_cnn", 2).eval()
batches, working = [], []
for step in range(9):
    batches.append(sel.background(model, step))
    if step % ctx.epoch_steps == 0:
        working.append(sel.working.clone())
out = {"batches": torch.stack(batches), "working": working, "forwards": sel.forwards}
torch.save(out, f"{sys.argv[1]}/rank{info.rank}.pt")
dist.shutdown()
"""


def test_two_ranks_make_the_same_choices(tmp_path: Path, torchrun) -> None:
    script = tmp_path / "ddp_hopfield.py"
    script.write_text(DDP_SCRIPT)
    proc = torchrun([str(tmp_path)], tmp_path, script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["batches"], r1["batches"])
    assert len(r0["working"]) == 3
    for w0, w1 in zip(r0["working"], r1["working"], strict=True):
        assert torch.equal(w0, w1) and len(w0) == 12
    # the cost is counted once per item over both ranks: 36 candidates, 36 ID images per epoch
    assert r0["forwards"] == r1["forwards"] == {"setup": 0, "during": 3 * 36, "id": 3 * 36}
    # the working sets changed with the epoch
    assert not torch.equal(r0["working"][0], r0["working"][1])
