"""The validation protocol: an ID split carved from training, a pool hold-out never trained on
and the embedded benchmark's val-glyphs as validation OOD sets, and the embedded pool's family
shares (the control run without glyphs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bgresample.cli import main
from bgresample.config import load_config
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.embedded import VAL_GLYPHS, EmbeddedConfig, generate
from bgresample.data.validation import HOLDOUT, SubsetSource, split_id, split_pool
from bgresample.engine.benchmark import load_benchmark


def test_id_split_is_stratified_disjoint_and_complete():
    data = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2)
    train = LabeledImages(data.clone(), torch.arange(100) % 4)
    kept, val = split_id(train, 0.2, seed=0)
    assert len(val) == 20 and len(kept) == 80
    assert torch.bincount(val.targets).tolist() == [5, 5, 5, 5]
    ids = torch.cat([kept.data[:, 0, 0, 0], val.data[:, 0, 0, 0]]).sort().values
    assert torch.equal(ids, torch.arange(100, dtype=torch.uint8))
    again, _ = split_id(train, 0.2, seed=0)
    assert torch.equal(again.data, kept.data)  # fixed by the seed
    assert split_id(train, 0.0, seed=0) == (train, None)


def test_pool_hold_out_is_never_in_the_training_pool():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 3, 2, 2).clone()
    pool = ImageArray(images, family=["a", "b"] * 25, source=[str(i) for i in range(50)])
    kept, held = split_pool(pool, 0.1, seed=3)
    assert len(kept) == 45 and len(held) == 5 and held.name == HOLDOUT
    assert not set(kept.source) & set(held.source)
    assert held.family == [pool.family[int(s)] for s in held.source]


def test_subset_view_reads_the_base_items():
    class Files:  # a pool that is not an in-memory array
        name, normalized, family, source = "files", False, None, None

        def __len__(self):
            return 10

        def get_batch(self, idx):
            return torch.as_tensor(idx).view(-1, 1, 1, 1).expand(-1, 3, 1, 1).to(torch.uint8)

    view = SubsetSource(Files(), torch.tensor([7, 2, 9]))
    assert len(view) == 3
    assert view.get_batch(torch.tensor([2, 0]))[:, 0, 0, 0].tolist() == [9, 7]


def test_benchmark_holds_validation_data(data_root):
    cfg = load_config(None, ["data.embedded.pool_size=600", "data.embedded.ood_size=60"])
    cfg.data.root = str(data_root)
    bench = load_benchmark(cfg)
    assert len(bench.pool) == 570 and len(bench.val_ood[HOLDOUT]) == 30
    assert bench.val is not None and len(bench.val) > 0
    assert list(bench.val_ood) == [HOLDOUT, VAL_GLYPHS] and len(bench.val_ood[VAL_GLYPHS]) == 60
    assert VAL_GLYPHS not in bench.ood  # a validation set, never a test set
    assert bench.groups["unshared"] == ["digits89", "faces", "gaussian", "uniform"]
    assert bench.groups["near"] == ["digits89", "glyphs", "scribbles"]


def test_unshared_average_only_with_the_embedded_pool(data_root, tmp_path):
    """ "Unshared generators" are those of the embedded pool's families: another pool has none."""
    pool = tmp_path / "pool.npy"
    np.save(pool, np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8))
    cfg = load_config(None, ["data.embedded.pool_size=600", "data.embedded.ood_size=60"])
    cfg.data.root, cfg.data.background = str(data_root), f"npy:{pool}"
    bench = load_benchmark(cfg)
    assert "unshared" not in bench.groups and bench.groups["near"]


def test_val_glyphs_only_beside_an_id_validation_split(data_root):
    base = ["data.embedded.pool_size=600", "data.embedded.ood_size=60"]
    cfg = load_config(None, [*base, "data.validation.pool_fraction=0"])
    cfg.data.root = str(data_root)
    bench = load_benchmark(cfg)
    assert list(bench.val_ood) == [VAL_GLYPHS] and len(bench.pool) == 600
    cfg = load_config(None, [*base, "data.validation.id_fraction=0"])
    cfg.data.root = str(data_root)
    bench = load_benchmark(cfg)  # no ID validation images: nothing to score val-glyphs against
    assert bench.val is None and list(bench.val_ood) == [HOLDOUT]


def test_family_shares_remove_a_family_and_keep_the_ood_sets():
    base = generate(EmbeddedConfig(pool_size=400, ood_size=20, noise_ood_size=10))
    shares = {"photo": 0.5, "pattern": 0.27, "noise": 0.19, "glyph": 0.0}
    control = generate(
        EmbeddedConfig(pool_size=400, ood_size=20, noise_ood_size=10, family_shares=shares)
    )
    assert len(control["pool_x"]) == 400
    families = sorted(["photo", "pattern", "noise", "glyph"])
    assert families.index("glyph") not in set(control["pool_family"].tolist())
    assert families.index("glyph") in set(base["pool_family"].tolist())
    for key in base:
        if key.startswith(("ood_", "train_", "test_", "val_")):
            assert (base[key] == control[key]).all(), key


def test_run_reports_validation_and_unshared_average(tiny, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), *tiny, "--set", "run.variants=none,random"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    for v in ("none", "random"):
        entry = res["variants"][v]
        assert set(entry["validation"]) == {"accuracy", "average", "ood"}
        assert list(entry["validation"]["ood"]) == [HOLDOUT, VAL_GLYPHS]
        assert 0 <= entry["validation"]["average"]["auroc"]["mean"] <= 100
        assert "average_unshared" in entry
        # per seed: the average is the mean over the two validation sets; over seeds: the
        # per-set means are the means of the seeds' values
        seeds = [json.loads((out / f"seed_{s}" / f"{v}.json").read_text()) for s in (0, 1)]
        for m in ("fpr95", "auroc"):
            for seed in seeds:
                per_set = [seed["validation"]["ood"][k][m]["mean"] for k in (HOLDOUT, VAL_GLYPHS)]
                assert seed["validation"]["average"][m]["mean"] == pytest.approx(sum(per_set) / 2)
            for k in (HOLDOUT, VAL_GLYPHS):
                over = entry["validation"]["ood"][k][m]["mean"]
                values = [seed["validation"]["ood"][k][m]["mean"] for seed in seeds]
                assert over == pytest.approx(sum(values) / 2)
    assert "validation" not in res["paired_differences"].get("random_minus_full", {})
    report = (out / "report.md").read_text()
    assert "Validation (pool-holdout, val-glyphs)" in report
    assert "| Validation: val-glyphs |" in report and "Validation (pool hold-out)" not in report
    assert "Average (unshared generators)" in report
