"""Run folders shared by the report tests: tiny runs, each made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgresample.cli import main
from bgresample.reports.build import build_report


def _run(out: Path, tiny: list[str], *extra: str) -> Path:
    args = ["run", "--quick", "--out", str(out), *tiny]
    for s in extra:
        args += ["--set", s]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str], data_root: Path) -> Path:
    run = _run(tmp_path_factory.mktemp("report") / "run", tiny)
    build_report(run, data_root=data_root)
    return run


@pytest.fixture(scope="session")
def two_variant_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> Path:
    """One seed of only the none and full variants: no resampling, no subsets."""
    out = tmp_path_factory.mktemp("report") / "two"
    return _run(out, tiny, "run.variants=[none, full]", "run.seeds=1")


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory: pytest.TempPathFactory, full_run: Path, tiny: list[str]) -> Path:
    """A single-model `evaluate` folder (of the pre-trained model) with two OOD scores."""
    out = tmp_path_factory.mktemp("report") / "ev"
    ckpt = full_run / "pretrain" / "pretrain.safetensors"
    args = ["evaluate", "--checkpoint", str(ckpt), "--scores", "msp,energy", "--out", str(out)]
    assert main([*args, *tiny]) == 0
    return out
