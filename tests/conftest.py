"""Shared fixtures: a tiny embedded benchmark cached once per test session."""

from __future__ import annotations

import pytest

#: --set overrides that make every stage run in seconds on a CPU.
TINY = [
    "data.embedded.pool_size=600",
    "data.embedded.ood_size=60",
    "data.embedded.noise_ood_size=200",
    "pretrain.epochs=2",
    "pretrain.checkpoint_every=0",
    "resample.draws_per_item=1",
    "resample.batch_size=64",
    "finetune.epochs=1",
    "finetune.batch_size=64",
    "finetune.background_batch_size=64",
    "evaluate.repeats=2",
    "run.seeds=2",
]


def tiny_args() -> list[str]:
    out: list[str] = []
    for s in TINY:
        out += ["--set", s]
    return out


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory):
    """A data directory shared by the session, so the tiny benchmark is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tiny(data_root) -> list[str]:
    """CLI arguments for a tiny, fast configuration with the shared data root."""
    return [*tiny_args(), "--data-root", str(data_root), "--quiet", "--device", "cpu"]
