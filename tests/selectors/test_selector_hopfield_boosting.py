"""``hopfield-boosting`` with ``finetune.loss=hopfield``: one ID epoch of the sampler reproduced
by hand (patterns, candidates, E_b, draws), its cadence, fine-tuning with the E_b loss on the
projection head (deterministic, resumed exactly, the head frozen unless asked), and the cell in
``bgresample compare-selectors --quick`` with the Delta score. The 2-process gloo check (with
the head trained: ``train_head``) is in tests/test_dist.py."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import torch
from selector_toys import TwoPixelModel, random_images
from torch import Tensor, nn

from bgresample.cli import main
from bgresample.config import default_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.transforms import CropFlip, prepare
from bgresample.engine.finetune import finetune, head_seed
from bgresample.losses import HopfieldOptions, add_projection_head
from bgresample.models import create_model
from bgresample.rng import generator
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.scores.hopfield import border_energy
from bgresample.selectors import HopfieldBoostingSampler, SelectionContext, build_selector
from bgresample.selectors.hopfield_boosting import STREAMS, store_patterns

CPU = Accel(torch.device("cpu"))
CFG = replace(
    default_config().finetune,
    epochs=2,
    batch_size=8,
    background_batch_size=4,
    lr=0.05,
    checkpoint_every=1,
    loss="hopfield",
)
ENV = Env(CPU, 7, False, quiet=True)


@pytest.fixture(scope="module")
def data() -> tuple[LabeledImages, ImageArray]:
    g = torch.Generator().manual_seed(0)
    return LabeledImages(random_images(40, g), torch.arange(40) % 2), ImageArray(
        random_images(120, g)
    )


def _ctx(data: Any, batch: int = 16, **kw: Any) -> SelectionContext:
    train, pool = data
    return SelectionContext(pool, train, CPU, 5, 0.1, 4, score_batch_size=batch, **kw)


def test_one_id_epoch_of_the_sampler_by_hand(data: Any) -> None:
    train, pool = data
    model = TwoPixelModel()
    head = add_projection_head(model, hidden_dim=6, out_dim=3, seed=1)
    ctx = _ctx(data, batch=1000, id_batch_size=8, flip=True)  # one batch each, as by hand
    sel = HopfieldBoostingSampler(ctx, candidates=2.0)
    assert (sel.period, sel.draws, sel.n_candidates) == (5, 20, 40)
    got = sel.select_epoch(model, epoch=3)

    def gen(purpose: str) -> torch.Generator:
        return generator(5, STREAMS[purpose], 3)

    def embed(images: Tensor, aug: CropFlip) -> Tensor:
        with torch.no_grad():
            return head(prepare(images, aug=aug)[:, 0, 0, :2])

    x = embed(train.data, CropFlip.draw(40, gen("id_aug"), flip=True))
    aux = torch.randperm(120, generator=gen("aux"))[:40]
    o = embed(pool.data[aux], CropFlip.draw(40, gen("aux_aug"), flip=False))
    cand = torch.randperm(120, generator=gen("candidates"))[:40]
    c = embed(pool.data[cand], CropFlip.draw(40, gen("candidates_aug"), flip=False))
    p = torch.softmax(4.0 * border_energy(c.double(), x.double(), o.double(), 4.0), dim=0)
    draws = torch.multinomial(p, 20, replacement=True, generator=gen("sample"))
    assert torch.equal(got, cand[draws].sort().values)
    assert sel.forwards == {"setup": 0, "during": 40 + 40, "id": 40}
    # the patterns stored for the score are those of the epoch after the last, the same way
    assert store_patterns(model, ctx, 3) == 80
    torch.testing.assert_close(model.hopfield.id_patterns, x, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.hopfield.aux_patterns, o, rtol=0, atol=1e-6)


def test_refreshed_once_per_id_epoch_deterministically(data: Any) -> None:
    model = TwoPixelModel()
    a, b = (
        build_selector(
            "hopfield-boosting",
            _ctx(data, id_batch_size=8),
            {"hopfield-boosting": {"candidates": 1.0}},
        )
        for _ in range(2)
    )
    sets = []
    for step in range(11):
        assert torch.equal(a.background(model, step), b.background(model, step))
        if step % 5 == 0:
            sets.append(a.working.clone())
    assert [len(w) for w in sets] == [20, 20, 20] and not torch.equal(sets[0], sets[1])
    assert a.summary()["forwards"] == {"setup": 0, "during": 3 * (40 + 20), "id": 3 * 40}
    with pytest.raises(ValueError, match="id_batch_size"):
        HopfieldBoostingSampler(_ctx(data))


def _selector(data: Any) -> HopfieldBoostingSampler:
    ctx = _ctx(data, id_batch_size=CFG.batch_size)
    return build_selector("hopfield-boosting", ctx, {"hopfield-boosting": {"candidates": 2.0}})


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("small_cnn", 2).eval()


def test_finetune_with_the_loss_is_deterministic_and_resumes_exactly(data: Any, tmp_path) -> None:
    train = data[0]
    ref = _model()
    info = finetune(ref, train, _selector(data), CFG, ENV, loss_options=HopfieldOptions())
    assert info["final_loss_out"] < 0  # a mean E_b
    # the head: from the seed, and never updated (the authors' optimiser leaves it out)
    fresh = add_projection_head(_model(), seed=head_seed(ENV.seed))
    for p, q in zip(ref.hopfield.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(ref.fc.weight, _model().fc.weight)

    state = tmp_path / "ft.state.safetensors"
    sel = _selector(data)
    draw = sel.background

    def interrupt(model: nn.Module, step: int) -> Tensor:
        if step == 7:  # the state was saved after epoch 1 (step 5)
            raise KeyboardInterrupt
        return draw(model, step)

    sel.background = interrupt  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        finetune(_model(), train, sel, CFG, ENV, loss_options=HopfieldOptions(), state_path=state)
    resumed = _model()
    info2 = finetune(
        resumed,
        train,
        _selector(data),
        CFG,
        ENV,
        loss_options=HopfieldOptions(),
        state_path=state,
        resume=True,
    )
    for (k, p), q in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    assert info2["selection"].pop("seconds") > 0 and info["selection"].pop("seconds") > 0
    assert info2["selection"] == info["selection"]


def test_the_cell_in_compare_selectors_quick(tmp_path, tiny) -> None:
    out = tmp_path / "sel"
    sets = ["pretrain.epochs=1", "run.seeds=1", "finetune.loss=hopfield"]
    args = ["compare-selectors", "--quick", "--out", str(out), *tiny, "--ood", "digits89"]
    args += ["--selectors", "none,hopfield-boosting", *[a for s in sets for a in ("--set", s)]]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["budget"]["loss"] == "hopfield" and res["budget"]["score"] == "hopfield"
    assert res["budget"]["alpha"] == 0.5
    sel = res["selection"]["hopfield-boosting"]
    # 650 ID training images, 570 pool items: |O| = 570, candidates capped at 570; 1 ID epoch
    # of 10 steps x 64 draws
    assert sel["working_set"] == 10 * 64 and sel["id"] == 650 and sel["total"] == 570 + 570
    assert sel["fwd_eq"] == 650 + 570 + 570
    for name in ("none", "hopfield-boosting"):
        entry = res["variants"][name]
        assert 0 <= entry["average"]["fpr95"]["mean"] <= 100
        tensors = (out / "seed_0" / f"{name}.safetensors").read_bytes()
        assert b"hopfield.id_patterns" in tensors  # the detector's stored patterns
