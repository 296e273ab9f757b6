"""examples/own_training_loop.py runs as a user would run it and prints sane metrics."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_training_loop.py"


def test_own_training_loop_runs_and_prints_metrics(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--epochs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = re.search(r"kept (\d+) of (\d+) pool items", proc.stdout)
    assert kept, proc.stdout
    n_kept, n_pool = int(kept[1]), int(kept[2])
    assert 0.05 * n_pool < n_kept < 0.15 * n_pool  # about 10% of the pool
    m = re.search(r"FPR95 ([\d.]+)\s+AUROC ([\d.]+)\s+AUPR ([\d.]+)", proc.stdout)
    assert m, proc.stdout
    fpr95, auroc, aupr = map(float, m.groups())
    assert all(0.0 <= v <= 100.0 for v in (fpr95, auroc, aupr))
    assert auroc > 50.0  # one epoch of each stage already separates the digit sets
