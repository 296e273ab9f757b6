"""report.html in a real headless browser (skipped where none is installed): it renders, its top
is not blank, and every table fits the page at 1400 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bgresample.reports.browser import find_browser, layout, screenshot

pytestmark = pytest.mark.skipif(
    find_browser() is None, reason="no headless Chromium or Chrome installed"
)


def test_report_renders_and_its_tables_fit(full_run: Path, tmp_path: Path):
    page = full_run / "report.html"
    png = screenshot(page, tmp_path / "top.png", width=1400, height=900)
    with Image.open(png) as img:
        assert img.size == (1400, 900)
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    assert (grey < 100).mean() > 0.01  # text drawn: headline, header, first table
    edges = layout(page, width=1400)
    tables = edges["tables"]
    assert len(tables) >= 6  # Table 2 (3 metrics), Table 3, paired differences, ...
    assert max(tables) <= edges["body"], "a table is wider than the page at 1400 px"
