"""Decoding a folder pool in DataLoader worker processes (``data.workers``) changes nothing in the
results: Algorithm 1 and fine-tuning give bit-identical weights and models with 0 or 2 workers,
and evaluation passes give the same logits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from bgresample.config import default_config
from bgresample.data.base import LabeledImages
from bgresample.data.pools import FolderImages
from bgresample.engine.finetune import finetune
from bgresample.engine.resample import resample
from bgresample.models import create_model
from bgresample.runtime.accel import Accel
from bgresample.runtime.env import Env
from bgresample.runtime.forward import predict_logits
from bgresample.selectors import FixedSubset, SelectionContext


@pytest.fixture(scope="module")
def folder_pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    for i in range(48):
        sub = root / f"fam{i % 3}"
        sub.mkdir(exist_ok=True)
        size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    (root / "fam0" / "broken.png").write_text("not an image")
    return root


def _train() -> LabeledImages:
    gen = torch.Generator().manual_seed(1)
    return LabeledImages(
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 4, (64,), generator=gen),
    )


def _run(root, workers: int) -> dict[str, torch.Tensor]:
    pool = FolderImages(root)
    accel = Accel(device=torch.device("cpu"), workers=workers)
    env = Env(accel, 0, True, quiet=True)
    cfg = default_config()
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4)
    r_cfg = replace(cfg.resample, draws_per_item=2, batch_size=16)
    resampler, _ = resample(model, _train(), pool, r_cfg, env)
    f_cfg = replace(cfg.finetune, epochs=1, batch_size=16, background_batch_size=16)
    ctx = SelectionContext(pool, _train(), accel, 0, 0.5, 16)
    finetune(model, _train(), FixedSubset(ctx, torch.arange(0, 49, 2)), f_cfg, env)
    out = {f"model.{k}": v for k, v in model.state_dict().items()}
    out["omega"] = resampler.omega.clone()
    out["logits"] = predict_logits(model, pool, accel, batch_size=10)
    out["skipped"] = torch.tensor(len(pool.skipped))
    return out


def test_results_do_not_depend_on_the_number_of_workers(folder_pool):
    inline, ahead = _run(folder_pool, 0), _run(folder_pool, 2)
    assert inline["omega"].abs().max() > 0 and inline["skipped"] == 1
    assert inline.keys() == ahead.keys()
    for k, v in inline.items():
        assert torch.equal(v, ahead[k]), k
