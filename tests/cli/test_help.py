"""Every subcommand's help says what it does, shows examples that parse, and lists only the
flags it uses; `run` comes first; the commands of docs/usage.md parse (issue 26)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from bgresample.cli import build_parser

USAGE = Path(__file__).resolve().parents[2] / "docs" / "usage.md"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBCOMMANDS = _subcommands()


def _examples(help_text: str) -> list[str]:
    """The command lines under ``examples:``, their comments stripped."""
    tail = help_text.split("\nexamples:\n", 1)[1]
    return [line.strip() for line in tail.splitlines() if line.strip()]


def test_run_is_the_first_subcommand():
    assert next(iter(SUBCOMMANDS)) == "run"
    listing = build_parser().format_help()
    assert listing.index("    run ") < min(
        listing.index(f"    {name}") for name in SUBCOMMANDS if name != "run"
    )


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_help_has_a_description_and_examples_that_parse(name):
    sub = SUBCOMMANDS[name]
    text = sub.format_help()
    assert sub.description and len(sub.description) > 60, name
    examples = _examples(text)
    assert 1 <= len(examples) <= 3, examples
    for line in examples:
        argv = shlex.split(line, comments=True)
        assert argv[:2] == ["bgresample", name], line
        build_parser().parse_args(argv[1:])  # exits (SystemExit) on a flag it does not know


def test_no_help_lists_an_unused_flag():
    texts = {"": build_parser().format_help()}
    texts.update({name: sub.format_help() for name, sub in SUBCOMMANDS.items()})
    assert not [name for name, text in texts.items() if "unused" in text.lower()]
    # flags each command does not use are not offered
    absent = {
        "plan": ["--out", "--overwrite", "--resume", "--download"],
        "config": ["--out", "--overwrite", "--resume", "--quiet"],
        "export": ["--device", "--seed", "--resume", "--ood"],
        "select": ["--resume", "--ood"],
        "evaluate": ["--resume", "--background"],
    }
    for name, flags in absent.items():
        offered = set(SUBCOMMANDS[name]._option_string_actions)
        assert not offered & set(flags), (name, offered & set(flags))
    for name in ("run", "compare-selectors", "pretrain", "resample", "finetune"):
        assert "--resume" in SUBCOMMANDS[name]._option_string_actions, name


def _usage_commands() -> list[str]:
    """The ``bgresample`` lines of docs/usage.md's bash blocks, continuations joined."""
    lines = []
    for body in re.findall(r"^```bash\n(.*?)^```", USAGE.read_text(), re.S | re.M):
        body = re.sub(r"\\\n\s*", " ", body)
        lines += [line for line in body.splitlines() if line.startswith("bgresample ")]
    return lines


@pytest.mark.parametrize("line", _usage_commands())
def test_the_commands_of_the_usage_guide_parse(line, capsys):
    argv = shlex.split(line, comments=True)[1:]
    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0 and "examples:" in capsys.readouterr().out
    else:
        build_parser().parse_args(argv)


def test_a_flag_the_command_lacks_is_named_with_the_commands_usage(capsys):
    from bgresample.cli import main

    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--pool", "npy:/x.npy", "--out", "o"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: bgresample pretrain" in err
    assert "bgresample pretrain: error: unrecognized arguments: --pool npy:/x.npy" in err
