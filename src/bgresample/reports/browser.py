"""``report.html`` in a real headless browser (Chromium or Chrome): a screenshot of its top, and
where its tables end on the page, so that a script and a test can check how it reads.

Nothing here runs unless asked: the reports themselves never need a browser.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Executables tried in order by :func:`find_browser`.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Appended to a copy of the page: the page's and the widest table's right edges, in CSS px.
_MEASURE = """<script>
const edge = el => el.getBoundingClientRect().right;
document.body.setAttribute("data-layout", JSON.stringify({
  body: edge(document.body),
  tables: [...document.querySelectorAll("table")].map(edge),
}));
</script>"""


def find_browser() -> str | None:
    """The path of the first of :data:`BROWSERS` on ``PATH``, or None."""
    return next((p for name in BROWSERS if (p := shutil.which(name))), None)


def _browser(browser: str | None) -> str:
    exe = browser or find_browser()
    if exe is None:
        raise RuntimeError(f"no headless browser found (tried {', '.join(BROWSERS)})")
    return exe


def _headless(browser: str, page: Path, width: int, height: int, *args: str) -> str:
    """Run ``browser`` headless on ``page`` at a ``width`` x ``height`` window; its stdout."""
    with tempfile.TemporaryDirectory(prefix="bgresample-browser-") as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            *args,
            page.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{browser} exited with {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def screenshot(
    page: Path, png: Path, width: int = 1400, height: int = 1800, browser: str | None = None
) -> Path:
    """The top ``width`` x ``height`` CSS pixels of ``page`` as rendered, written to ``png``."""
    exe = _browser(browser)
    png.parent.mkdir(parents=True, exist_ok=True)
    _headless(exe, page, width, height, f"--screenshot={png.resolve()}")
    if not png.is_file():
        raise RuntimeError(f"{exe} wrote no screenshot to {png}")
    return png


def layout(page: Path, width: int = 1400, browser: str | None = None) -> dict[str, object]:
    """Right edges, in CSS px, of the page's body and of each of its tables when rendered at
    ``width``: ``{"body": x, "tables": [x, ...]}``."""
    exe = _browser(browser)
    with tempfile.TemporaryDirectory(prefix="bgresample-layout-") as tmp:
        probe = Path(tmp) / page.name
        probe.write_text(page.read_text(encoding="utf-8") + _MEASURE, encoding="utf-8")
        dom = _headless(exe, probe, width, 1000, "--dump-dom")
    found = re.search(r'data-layout="([^"]*)"', dom)
    if found is None:
        raise RuntimeError(f"{exe} did not run the layout probe on {page}")
    return json.loads(html.unescape(found.group(1)))
