"""Render a run's ``report.html`` in headless Chromium: a screenshot of its top (headline,
header and Table 2) and a check that every table fits the page.

    .venv/bin/python benchmarks/render_report.py RUN_DIR [--out PNG] [--width 1400] [--height 1800]

Rebuilds nothing: run ``bgresample report RUN_DIR`` first. The committed render
(docs/figures/report_top_1400px.png) comes from ``make demo``'s ``runs/demo``:

    .venv/bin/python benchmarks/render_report.py runs/demo --out docs/figures/report_top_1400px.png

The PNG is reduced to a 64-colour palette (text and table rules stay sharp) to keep it small.
Ends with one JSON line: the PNG's path, size in pixels and bytes, and the layout check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

from bgresample.reports.browser import find_browser, layout, screenshot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="PNG to write (default RUN_DIR/report_top.png)")
    p.add_argument("--width", type=int, default=1400, help="window width in CSS px")
    p.add_argument("--height", type=int, default=1800, help="height of the screenshot")
    args = p.parse_args(argv)
    page = args.run_dir / "report.html"
    if not page.is_file():
        print(f"{page} does not exist; run `bgresample report {args.run_dir}` first")
        return 2
    if find_browser() is None:
        print("no headless browser found; install one, e.g. `apt-get install chromium`")
        return 2
    out = args.out or args.run_dir / "report_top.png"
    screenshot(page, out, args.width, args.height)
    with Image.open(out) as img:
        img.convert("RGB").quantize(colors=64).save(out, optimize=True)
    edges = layout(page, args.width)
    tables = [float(x) for x in edges["tables"]]  # type: ignore[union-attr]
    fits = max(tables, default=0.0) <= float(edges["body"])  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "png": str(out),
                "pixels": [args.width, args.height],
                "bytes": out.stat().st_size,
                "tables": len(tables),
                "widest_table_px": max(tables, default=0.0),
                "body_px": edges["body"],
                "tables_fit": fits,
            }
        )
    )
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
