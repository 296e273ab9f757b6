"""End-to-end tests of the command line on a tiny configuration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_run_quick_writes_report_with_all_variants(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--quick", "--out", str(out), *tiny]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == default_config().run.variants
    for v in default_config().run.variants:
        assert set(res["variants"][v]["ood"]) == set(OOD_SETS)
        assert len(res["variants"][v]["per_seed"]) == 2
    report = (out / "report.md").read_text()
    assert "Table 2" in report and "Table 3" in report and "resampled" in report
    assert "resampled_minus_random" in res["paired_differences"]
    assert res["variants"]["random"]["subset_size"] == round(0.1 * res["pool_size"])
    printed = capsys.readouterr().out
    assert "Average" in printed
    # a smoke test says so, in the terminal and in both reports
    assert res["quick"] is True and printed.startswith("SMOKE TEST (--quick)")
    assert "fine-tuning epochs, 2 seeds)" in printed  # the run's own seed count
    assert (
        "SMOKE TEST (--quick)" in report
        and "SMOKE TEST (--quick)" in (out / "report.html").read_text()
    )
