"""docs/api.md against the code: every call it writes in `code` resolves to a bgresample object
(a top-level name, a dotted path, or a method of the section's class), its positional arguments
are the signature's in order, its keywords exist and the defaults it shows are the defaults."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
import torch

import bgresample

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
CALL = re.compile(r"^[A-Za-z_][\w.]*\(.*\)(\s*->.*)?$")
#: Calls of other libraries the page writes (not checked).
FOREIGN = ("len", "np.", "torch.", "F.")


def _sections() -> list[tuple[list[str], str]]:
    """(classes named in the heading, text) per ``## `` section."""
    out = []
    for part in DOC.read_text().split("\n## ")[1:]:
        heading, _, body = part.partition("\n")
        names = re.findall(r"`(\w+)`", heading)
        out.append(([n for n in names if inspect.isclass(getattr(bgresample, n, None))], body))
    return out


def _calls() -> list[tuple[str, list[str]]]:
    calls = []
    for classes, body in _sections():
        body = re.sub(r"```.*?```", "", body, flags=re.S)  # code blocks use instances
        for span in re.findall(r"`([^`\n]+)`", body):
            if CALL.match(span) and not span.startswith(FOREIGN):
                calls.append((span.split("->")[0].strip(), classes))
    return calls


def _resolve(name: str, classes: list[str]) -> object:
    head, *rest = name.split(".")
    if head == "bgresample":  # the longest importable module, then attributes
        for cut in range(len(rest), 0, -1):
            try:
                obj = importlib.import_module(".".join([head, *rest[: cut - 1]]))
            except ModuleNotFoundError:
                continue
            for attr in rest[cut - 1 :]:
                obj = getattr(obj, attr)
            return obj
    owners = [c for c in classes if hasattr(getattr(bgresample, c), head)]
    if owners and not rest:  # a method of the section's class (select: the resampler's)
        return getattr(getattr(bgresample, owners[0]), head)
    if head in bgresample.__all__:
        obj = getattr(bgresample, head)
        for attr in rest:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"{name}: neither a top-level name nor a method of {classes}")


def _value(node: ast.expr) -> object:
    return eval(compile(ast.Expression(node), "<doc>", "eval"), {"torch": torch})


CALLS = _calls()


def test_the_page_writes_calls():
    assert len(CALLS) > 60


@pytest.mark.parametrize(("text", "classes"), CALLS, ids=[c[0] for c in CALLS])
def test_every_documented_call_matches_the_signature(text, classes):
    call = ast.parse(text, mode="eval").body
    while isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Call):
        call = call.func.value  # f(...).mean(): check f
    assert isinstance(call, ast.Call), text
    fn = _resolve(ast.unparse(call.func), classes)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    named = {p.name: p for p in params}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(call.args) <= len(positional), f"{text}: too many positional arguments"
    for arg, param in zip(call.args, positional, strict=False):
        if isinstance(arg, ast.Constant):  # an example value
            continue
        assert isinstance(arg, ast.Name), f"{text}: positional arguments are parameter names"
        assert arg.id == param.name, f"{text}: {arg.id!r} where the code has {param.name!r}"
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in named:  # **params, or one of them
            assert var_keyword, f"{text}: no parameter {kw.arg or '**'!r} in {list(named)}"
            continue
        default = named[kw.arg].default
        if default is not inspect.Parameter.empty:
            try:
                shown = _value(kw.value)
            except NameError:  # a placeholder such as n=n
                continue
            assert shown == default, f"{text}: {kw.arg}={shown!r}, the code's default {default!r}"


def test_what_the_page_says_is_exported_is_exported():
    for name in (
        "max_entropy_loss",
        "energy_margin_loss",
        "extra_class_loss",
        "evaluate_protocol",
        "Detector",
        "OODMetrics",
        "BackgroundResampler",
        "WeightedSampler",
    ):
        assert name in bgresample.__all__ and hasattr(bgresample, name)


def test_the_refresh_period_is_the_floor_the_page_states():
    text = DOC.read_text()
    assert "max(N // batch, 1)" in text and "ceil(N / batch)" not in text
    assert bgresample.BackgroundResampler(1000).period(128) == 1000 // 128


def test_the_stated_ess_range_is_the_tested_one():
    test = (DOC.parents[1] / "tests" / "resampling" / "test_step_scale.py").read_text()
    assert "ESS_RANGE = (0.6 * N, 0.9 * N)" in test and "N, BATCH, STEPS = 4000, 128, 50" in test
    assert "lies between 60% and 90% of N" in " ".join(DOC.read_text().split())
