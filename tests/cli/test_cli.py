"""End-to-end tests of the command line on a tiny configuration."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bgresample import BackgroundResampler
from bgresample import config as C
from bgresample.cli import main
from bgresample.config import default_config
from bgresample.data.embedded import OOD_SETS


def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "bgresample", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("pretrain", "evaluate", "resample", "select", "finetune", "run"):
        assert cmd in out


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("pre")
    assert main(["pretrain", "--out", str(out), *tiny]) == 0
    return out


def test_pretrain_then_evaluate(pretrained, tiny, tmp_path, capsys):
    ckpt = pretrained / "pretrain.safetensors"
    for name in ("pretrain.safetensors", "config.yaml", "meta.json", "log.txt"):
        assert (pretrained / name).is_file(), name
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "ev"), *tiny]) == 0
    printed = capsys.readouterr().out
    assert "Average" in printed and "ID accuracy" in printed
    table = printed[printed.index("OOD set") : printed.index("OOD is the positive")].splitlines()
    accuracy = next(line for line in table if line.startswith("ID accuracy"))
    assert "±" not in accuracy  # one model: no std over seeds to show
    assert len({len(line) for line in table[1:]}) == 1  # long labels keep the columns aligned
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["convention"] == "ood-positive"
    model = res["variants"]["model"]
    assert 0 <= model["accuracy"] <= 100
    assert set(model["ood"]) == set(OOD_SETS)
    keys = {"fpr95", "auroc", "aupr", "aupr_in", "aupr_out"}
    for metrics in model["ood"].values():
        assert set(metrics) == keys
        assert 0 <= metrics["fpr95"]["mean"] <= 100 and metrics["auroc"]["std"] >= 0
    assert set(model["average"]) == keys


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_evaluate_missing_checkpoint(tiny, tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "nope.safetensors"),
            "--out",
            str(tmp_path / "o"),
            *tiny,
        ]
    )
    assert code == 2
    err = _err(capsys)
    assert "not found" in err and len(err.splitlines()) == 1


def test_evaluate_unknown_ood_set(pretrained, tiny, tmp_path, capsys):
    ckpt = str(pretrained / "pretrain.safetensors")
    code = main(
        ["evaluate", "--checkpoint", ckpt, "--ood", "emnist", "--out", str(tmp_path / "o"), *tiny]
    )
    assert code == 2
    err = _err(capsys)
    assert "unknown OOD set 'emnist'" in err and "digits89" in err


def test_evaluate_wrong_architecture(pretrained, tiny, tmp_path, capsys):
    ckpt = str(pretrained / "pretrain.safetensors")
    args = ["evaluate", "--checkpoint", ckpt, "--out", str(tmp_path / "o"), *tiny]
    assert main([*args, "--set", "model.name=wrn40_2"]) == 2
    err = _err(capsys)
    assert "small_cnn" in err and "wrn40_2" in err and len(err.splitlines()) == 1


def test_refuses_to_overwrite_a_run(pretrained, tiny, capsys):
    assert main(["pretrain", "--out", str(pretrained), *tiny]) == 2
    assert "--overwrite" in _err(capsys)


def test_bad_config_values(tiny, tmp_path, capsys):
    for key, fragment in (("select.gamma=1.5", "(0, 1]"), ("resample.eps=-0.1", "[0, 1]")):
        assert main(["run", "--out", str(tmp_path / key), *tiny, "--set", key]) == 2
        assert fragment in _err(capsys)
    assert main(["run", "--out", str(tmp_path / "x"), *tiny, "--set", "resample.epz=1"]) == 2
    assert "unknown config key 'resample.epz'" in _err(capsys)
    # a value a flag set: the fix names the flag, not --set
    assert main(["run", "--out", str(tmp_path / "s"), *tiny, "--seeds", "0"]) == 2
    assert "run.seeds=0 is invalid" in (err := _err(capsys)) and "(fix --seeds)" in err
    assert main(["select", "--method", "random", "--gamma", "2", "--out", str(tmp_path)]) == 2
    assert "(fix --gamma)" in _err(capsys)


def test_stage_commands_chain(pretrained, tiny, tmp_path):
    ckpt = str(pretrained / "pretrain.safetensors")
    rs, sel, ft = tmp_path / "rs", tmp_path / "sel", tmp_path / "ft"
    assert main(["resample", "--checkpoint", ckpt, "--out", str(rs), *tiny]) == 0
    assert (rs / "weights.safetensors").is_file()
    hist = json.loads((rs / "resample_history.json").read_text())
    assert hist["draws_per_item"] >= 1
    weights = str(rs / "weights.safetensors")
    args = ["select", "--weights", weights, "--gamma", "0.2", "--method", "topk"]
    assert main([*args, "--out", str(sel), *tiny]) == 0
    summary = json.loads((sel / "subset_summary.json").read_text())
    assert summary["size"] == round(0.2 * summary["pool_size"])
    assert abs(sum(c["subset"] for c in summary["composition"].values()) - 1) < 1e-9
    manifest = str(sel / "subset_topk.csv")
    assert (
        main(
            [
                "finetune",
                "--checkpoint",
                ckpt,
                "--variant",
                "resampled",
                "--subset",
                manifest,
                "--out",
                str(ft),
                *tiny,
            ]
        )
        == 0
    )
    assert (ft / "finetune.safetensors").is_file()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ft / "finetune.safetensors"),
                "--out",
                str(tmp_path / "ev"),
                *tiny,
            ]
        )
        == 0
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, tiny) -> tuple[Path, str]:
    """A tiny `run --quick` (two seeds) and what it printed."""
    out = tmp_path_factory.mktemp("quick") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", "--quick", "--out", str(out), *tiny]) == 0
    return out, printed.getvalue()


def test_run_quick_writes_report_with_all_variants(quick_run):
    out, printed = quick_run
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == default_config().run.variants
    for v in default_config().run.variants:
        assert set(res["variants"][v]["ood"]) == set(OOD_SETS)
        assert len(res["variants"][v]["per_seed"]) == 2
    report = (out / "report.md").read_text()
    assert "Table 2" in report and "Table 3" in report and "resampled" in report
    assert "resampled_minus_random" in res["paired_differences"]
    assert res["variants"]["random"]["subset_size"] == round(0.1 * res["pool_size"])
    assert "Average" in printed
    # a smoke test says so, in the terminal and in both reports
    assert res["quick"] is True and printed.startswith("SMOKE TEST (--quick)")
    assert "1 fine-tuning epoch, 2 seeds)" in printed  # its own epochs and seed count
    assert (
        "SMOKE TEST (--quick)" in report
        and "SMOKE TEST (--quick)" in (out / "report.html").read_text()
    )


# -- the stage commands on a run's files need no --config (issue 26) ---------------------------


def test_select_on_a_quick_runs_weights_needs_no_config(quick_run, tmp_path, capsys):
    """The newcomer's sequence: `run --quick`, then `select --weights RUN/seed_1/...` with no
    --config, no data flags: the run's config (its pool, its data root) and seed 1 come with
    the file, so the subset is the one the run chose."""
    run, _ = quick_run
    out = tmp_path / "sel"
    weights = run / "seed_1" / "weights.safetensors"
    info = BackgroundResampler.read_info(weights)  # the pool they were learned on
    assert re.fullmatch("v1:[0-9a-f]{16}", info["pool"]) and int(info["pool_size"]) == len(
        BackgroundResampler.load(weights).omega
    )
    assert main(["select", "--weights", str(weights), "--out", str(out), "--quiet"]) == 0
    assert "kept" in capsys.readouterr().out
    chosen = (out / "subset_authors.csv").read_text()
    assert chosen == (run / "seed_1" / "subset_resampled.csv").read_text()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (
        config["seed"] == 1
        and config["data"] == yaml.safe_load((run / "config.yaml").read_text())["data"]
    )


def test_evaluate_a_runs_checkpoint_with_other_scores_and_sets(quick_run, tmp_path, capsys):
    """Settings that leave the data and the model alone apply on top of the run's."""
    run, _ = quick_run
    out = tmp_path / "ev"
    ckpt = run / "seed_0" / "resampled.safetensors"
    args = ["evaluate", "--checkpoint", str(ckpt), "--out", str(out), "--quiet"]
    args += ["--ood", "digits89", "--set", "evaluate.repeats=1", "--scores", "msp,energy"]
    assert main(args) == 0
    capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]["model"]["ood"]) == ["digits89"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["embedded"]["pool_size"] == 600 and config["evaluate"]["repeats"] == 1


@pytest.mark.parametrize(
    "extra, keys",
    [
        (["--set", "data.embedded.pool_size=700"], "data.embedded.pool_size: 600 -> 700"),
        (["--set", "model.name=wrn40_2"], "model.name: small_cnn -> wrn40_2"),
        ([], "data.embedded.pool_size: 600 -> 20000"),  # with --config of the defaults
    ],
)
def test_a_config_that_disagrees_with_the_run_is_refused(quick_run, tmp_path, capsys, extra, keys):
    run, _ = quick_run
    out = tmp_path / "sel"
    args = ["select", "--weights", str(run / "seed_0" / "weights.safetensors"), "--out", str(out)]
    if not extra:
        extra = ["--config", str(Path(C.__file__).parent / "configs" / "default.yaml")]
    assert main([*args, *extra, "--quiet"]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and keys in err and f"the run {run}" in err
    assert not out.exists()  # refused before anything is written


def test_inputs_from_runs_of_other_data_are_refused(quick_run, tmp_path, capsys):
    """finetune's checkpoint and subset must come from runs of the same data and model."""
    run, _ = quick_run
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(run / "meta.json", other / "meta.json")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["embedded"]["pool_size"] = 900
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(run / "seed_0" / "subset_resampled.csv", other / "subset.csv")
    args = ["finetune", "--checkpoint", str(run / "pretrain" / "pretrain.safetensors")]
    args += ["--variant", "resampled", "--subset", str(other / "subset.csv")]
    assert main([*args, "--out", str(tmp_path / "ft"), "--quiet"]) == 2
    err = _err(capsys)
    assert "come from runs of other data or models" in err
    assert "data.embedded.pool_size: 600 -> 900" in err and not (tmp_path / "ft").exists()


def test_a_command_failing_before_work_leaves_no_folder_and_the_retry_runs(
    quick_run, tiny, tmp_path, capsys
):
    """A failed `select` leaves no run folder (an empty --out stays empty), so the same command
    with the right input runs without --overwrite; a failure after results keeps them."""
    run, _ = quick_run
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"not a safetensors file")
    good = run / "seed_0" / "weights.safetensors"
    out = tmp_path / "sel"
    assert main(["select", "--weights", str(bad), "--out", str(out), *tiny]) == 2
    assert "weights.safetensors" in _err(capsys)
    assert not out.exists()
    assert main(["select", "--weights", str(good), "--out", str(out), *tiny]) == 0
    assert (out / "subset_authors.csv").is_file()
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["select", "--weights", str(bad), "--out", str(empty), *tiny]) == 2
    assert list(empty.iterdir()) == []
    assert main(["select", "--weights", str(bad), "--out", str(out), *tiny, "--overwrite"]) == 2
    assert list(out.iterdir()) == []  # --overwrite removed the old run; the new one did no work
    _err(capsys)
