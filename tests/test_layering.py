"""The library core (resampling, losses, scores, metrics) stands alone: importing bgresample
loads none of the harness (engine, CLI, commands, reports, config)."""

from __future__ import annotations

import subprocess
import sys

HARNESS = ("engine", "cli", "commands", "reports", "config", "runfolder", "selectors", "data")


def test_import_bgresample_loads_no_harness_module():
    code = "import sys, bgresample; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "bgresample.resampling.resampler" in loaded
    ours = [m for m in loaded if m.startswith("bgresample.")]
    leaked = [m for m in ours if m.split(".")[1] in HARNESS + ("checkpoint", "dist")]
    assert not leaked, f"the library core imports harness modules: {leaked}"
    heavy = [m for m in ("sklearn", "scipy") if m in loaded]
    assert not heavy, f"import bgresample loads {heavy}; import them where a metric needs them"
