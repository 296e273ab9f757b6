"""Where the engine follows the authors' code (issue 14): the weight step's scaling, the
sampler's refresh cadence, and background flips that follow the ID transform."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bgresample import BackgroundResampler
from bgresample.config import default_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine import finetune as finetune_mod
from bgresample.engine import resample as resample_mod
from bgresample.engine.resample import refresh_period, resample
from bgresample.models import create_model
from bgresample.rng import Stream
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env

N_TRAIN, N_POOL, BATCH = 192, 640, 32


def _data() -> tuple[LabeledImages, ImageArray]:
    gen = torch.Generator().manual_seed(0)
    train = LabeledImages(
        torch.randint(0, 256, (N_TRAIN, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 4, (N_TRAIN,), generator=gen),
    )
    pool = ImageArray(
        torch.randint(0, 256, (N_POOL, 3, 32, 32), dtype=torch.uint8, generator=gen), name="p"
    )
    return train, pool


def _resample(flip: bool = False, background_flip: bool | None = None, **overrides):
    train, pool = _data()
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4)
    cfg = replace(default_config().resample, draws_per_item=1, batch_size=BATCH, **overrides)
    env = Env(Accel(torch.device("cpu")), 0, flip, True, background_flip)
    resampler, _ = resample(model, train, pool, cfg, env)
    return resampler


def test_scaled_weight_step_is_the_plain_step_with_lr_times_alpha():
    """The authors ascend alpha * l_out with lr_w: the same as l_out with lr_w * alpha (SGD with
    momentum, no weight decay on omega), an effective step of 50 at lr_w 100, alpha 0.5."""
    scaled = _resample(weight_loss="scaled", lr_w=100.0, alpha=0.5)
    plain = _resample(weight_loss="plain", lr_w=50.0, alpha=0.5)
    unscaled = _resample(weight_loss="plain", lr_w=100.0, alpha=0.5)
    assert scaled.omega.abs().max() > 0
    torch.testing.assert_close(scaled.omega, plain.omega, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(scaled.omega, unscaled.omega)


def test_presets_use_the_authors_scaling_and_cadence():
    from bgresample.config import load_config

    for preset in ("cifar10", "cifar100", "tiny-imagenet"):
        cfg = load_config(None, [], preset=preset)
        assert cfg.resample.weight_loss == "scaled"
        assert cfg.resample.refresh == "id-epoch"


@pytest.mark.parametrize(
    "refresh, refresh_every, period",
    [
        ("pool-epoch", 0, N_POOL // BATCH),  # N / n steps
        ("id-epoch", 0, N_TRAIN // BATCH),  # |D_in| / n steps, the authors' cadence
        ("id-epoch", 4, 4),  # every k steps overrides both
    ],
)
def test_the_sampler_is_rebuilt_exactly_when_the_cadence_says(
    monkeypatch, refresh, refresh_every, period
):
    cfg = replace(
        default_config().resample,
        batch_size=BATCH,
        refresh=refresh,
        refresh_every=refresh_every,
    )
    expected = None if (refresh == "pool-epoch" and not refresh_every) else period
    assert refresh_period(cfg, N_TRAIN) == expected
    at: list[int] = []
    original = BackgroundResampler.refresh

    def spy(self):
        at.append(self.steps)
        original(self)

    monkeypatch.setattr(BackgroundResampler, "refresh", spy)
    _resample(refresh=refresh, refresh_every=refresh_every)
    steps = N_POOL // BATCH  # draws_per_item=1
    assert at == list(range(0, steps, period))


@pytest.mark.parametrize(
    "flip, background_flip, expected",
    [(False, None, False), (True, None, True), (False, True, True), (True, False, False)],
)
def test_background_flips_follow_the_id_transform_unless_asked(
    monkeypatch, flip, background_flip, expected
):
    seen: list[bool] = []
    original = resample_mod.crop_flip

    def spy(n, seed, stream, step, flip):
        if stream == Stream.BACKGROUND_AUG:
            seen.append(flip)
        return original(n, seed, stream, step, flip)

    monkeypatch.setattr(resample_mod, "crop_flip", spy)
    monkeypatch.setattr(finetune_mod, "crop_flip", spy)
    _resample(flip=flip, background_flip=background_flip)
    assert seen and set(seen) == {expected}
    env = Env(Accel(torch.device("cpu")), 0, flip, True, background_flip)
    assert env.bg_flip is expected
