"""The fast data path (ID data and pool kept on the GPU, ``accel.data_on_device``) changes where
the uint8 batches live, not the numbers: Algorithm 1 in fp32 gives bit-identical weights and
model with and without it (deterministic cuDNN; GPU only, the option is a no-op on the CPU)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bgresample.config import default_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine.resample import resample
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def _run(data_on_device: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    train = LabeledImages(
        torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 10, (512,), generator=gen),
    )
    pool = ImageArray(
        torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=gen), name="synthetic"
    )
    accel = Accel(device=torch.device("cuda"), data_on_device=data_on_device)
    accel.stage(train, pool)
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10)
    cfg = replace(default_config().resample, draws_per_item=2, batch_size=64)
    resampler, _ = resample(model, train, pool, cfg, Env(accel, 0, True, quiet=True))
    return resampler.omega.cpu(), {k: v.cpu() for k, v in model.state_dict().items()}


def test_fp32_bit_identical_with_and_without_data_on_device():
    bench, det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        omega_fast, model_fast = _run(True)
        omega_slow, model_slow = _run(False)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = bench, det
    assert omega_fast.abs().max() > 0  # the weights moved
    assert torch.equal(omega_fast, omega_slow)
    for k, v in model_fast.items():
        assert torch.equal(v, model_slow[k]), k
