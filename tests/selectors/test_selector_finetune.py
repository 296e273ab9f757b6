"""Every selector inside the fine-tuning loop: the budget (at most k distinct items eligible
per background epoch), determinism, and an interrupted run that resumes exactly."""

from dataclasses import replace
from typing import Any

import pytest
import torch

from bgresample.config import default_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine.finetune import finetune
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.selectors import SELECTORS, SelectionContext, Selector, build_selector

N, GAMMA, BBS = 120, 0.1, 4  # k = 12: a background epoch is 3 steps
CFG = replace(
    default_config().finetune,
    epochs=2,
    batch_size=8,
    background_batch_size=BBS,
    lr=0.01,
    checkpoint_every=1,
)
ENV = Env(Accel(torch.device("cpu")), 7, False, quiet=True)
OPTIONS = {
    "ntom": {"candidates": 2.0},
    "poem": {"candidates": 2.0},
    "dos": {"candidates": 2.0},
    "hopfield": {"candidates": 2.0},
    "hopfield-boosting": {"candidates": 2.0},
}


@pytest.fixture(scope="module")
def data() -> tuple[LabeledImages, ImageArray, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)  # noqa: E731
    train = LabeledImages(img(40), torch.arange(40) % 2)  # 5 steps per epoch
    return train, ImageArray(img(N)), torch.rand(N, generator=g) + 0.1


def _selector(name: str, data: Any) -> Selector:
    train, pool, weights = data
    ctx = SelectionContext(
        pool,
        train,
        Accel(torch.device("cpu")),
        7,
        GAMMA,
        BBS,
        weights=weights,
        weights_cost=99,
        id_batch_size=CFG.batch_size,
    )
    return build_selector(name, ctx, OPTIONS)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("small_cnn", 2).eval()


@pytest.mark.parametrize("name", list(SELECTORS))
def test_budget_and_determinism(name: str, data: Any) -> None:
    model, k = _model(), round(GAMMA * N)
    a, b = _selector(name, data), _selector(name, data)
    epochs: dict[int, set[int]] = {}
    for step in range(9):
        idx = a.background(model, step)
        assert len(idx) == BBS and torch.equal(idx, b.background(model, step))
        epochs.setdefault(step // a.refresh_steps, set()).update(idx.tolist())
    if name == "hopfield-boosting":  # no gamma budget: one ID epoch of draws per ID epoch
        assert a.refresh_steps == 5 and len(a.working) == 5 * BBS
    elif name != "full":
        assert all(len(items) <= k for items in epochs.values())
    s = a.summary()
    assert s["distinct_items"] == len(set().union(*epochs.values()))
    assert s["forwards"]["setup"] == (99 if name in ("resampled", "topk-weight") else 0)
    expected = {"ntom": 3 * 24, "poem": 3 * 24, "dos": 9 * 8, "hopfield": 3 * 24}.get(name, 0)
    # hopfield-boosting: 2 ID epochs of 40 auxiliary patterns and 2 x 20 candidates
    expected = 2 * (40 + 40) if name == "hopfield-boosting" else expected
    assert s["forwards"]["during"] == expected
    if name == "hopfield":  # its stored ID patterns: as many ID images as candidates
        assert s["forwards"]["id"] == 3 * 24 and s["working_set"] == k
    if name == "hopfield-boosting":  # the whole ID training set, once per ID epoch
        assert s["forwards"]["id"] == 2 * 40 and s["working_set"] == 5 * BBS


@pytest.mark.parametrize("name", ["poem", "dos", "hopfield", "hopfield-boosting"])
def test_interrupted_finetune_resumes_exactly(name: str, data: Any, tmp_path) -> None:
    train = data[0]
    ref = _model()
    info = finetune(ref, train, _selector(name, data), CFG, ENV)
    assert info["selection"]["selector"] == name

    state = tmp_path / "ft.state.safetensors"
    sel = _selector(name, data)
    draw = sel.background

    def interrupt(model: torch.nn.Module, step: int) -> torch.Tensor:
        if step == 7:  # the state was saved after epoch 1 (step 5)
            raise KeyboardInterrupt
        return draw(model, step)

    sel.background = interrupt  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        finetune(_model(), train, sel, CFG, ENV, state_path=state)
    assert state.is_file()
    resumed = _model()
    again = _selector(name, data)
    info2 = finetune(resumed, train, again, CFG, ENV, state_path=state, resume=True)
    for p, q in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    # the same selection; only the measured wall seconds differ
    assert info2["selection"].pop("seconds") > 0 and info["selection"].pop("seconds") > 0
    assert info2["selection"] == info["selection"]
