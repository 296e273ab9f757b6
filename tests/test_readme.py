"""README.md fits on a screen, every relative link of README.md and docs/*.md resolves, and the
cheap commands of README's ```bash blocks run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bgresample.cli import build_parser, main, resolve_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_LINES = 200

#: Subcommands whose README lines are run: they print and write nothing (plus every --help).
CHEAP = {"config", "datasets"}
#: Subcommands whose README lines are only parsed (flags, and the config: --preset, --set, ...),
#: not run: they train or time real training steps (minutes to days) ...
EXPENSIVE = {"run", "pretrain", "resample", "finetune", "compare-selectors", "plan"}
#: ... or need a run folder, a checkpoint, weights or a manifest that the README names by example.
NEEDS_INPUTS = {"select", "evaluate", "export", "report", "compare", "convert"}

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _commands() -> list[str]:
    """Lines starting with ``bgresample `` in README's ```bash blocks, continuations joined."""
    lines = []
    for lang, body in FENCE.findall(README.read_text()):
        if lang == "bash":
            body = re.sub(r"\\\n\s*", " ", body)
            lines += [line for line in body.splitlines() if line.startswith("bgresample ")]
    return lines


def _argv(line: str) -> list[str]:
    return shlex.split(line, comments=True)[1:]


def _id(line: str) -> str:
    return " ".join(_argv(line))


def _is_cheap(argv: list[str]) -> bool:
    return "--help" in argv or "-h" in argv or argv[0] in CHEAP


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # --help
        return e.code or 0


COMMANDS = _commands()
RUN = [line for line in COMMANDS if _is_cheap(_argv(line))]
PARSE_ONLY = [line for line in COMMANDS if not _is_cheap(_argv(line))]


def test_readme_fits_on_a_screen():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES}: move text to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    text = FENCE.sub("", page.read_text())  # code blocks hold no links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto, or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


def test_readme_commands_are_classified():
    assert RUN and PARSE_ONLY, COMMANDS
    known = CHEAP | EXPENSIVE | NEEDS_INPUTS
    unknown = [line for line in PARSE_ONLY if _argv(line)[0] not in known]
    assert not unknown, f"classify these README commands in {__file__}: {unknown}"


@pytest.mark.parametrize("line", RUN, ids=_id)
def test_cheap_readme_command_runs(line, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BGRESAMPLE_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert _exit_code(_argv(line)) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("line", PARSE_ONLY, ids=_id)
def test_expensive_readme_command_parses(line, tmp_path, monkeypatch):
    """Not run; its flags must exist and, where it takes a config, the config must resolve."""
    monkeypatch.setenv("BGRESAMPLE_DATA", str(tmp_path / "data"))
    args = build_parser().parse_args(_argv(line))
    if hasattr(args, "sets"):
        resolve_config(args)
