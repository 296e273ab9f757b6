"""Typed option fields with range checks, shared by the config schema (:mod:`bgresample.config`)
and the plug-ins that declare their own options (a selector's ``Options`` dataclass).

A field's metadata holds ``check`` (a predicate) and ``expected`` (what a valid value is, in
words); :func:`check_options` applies them to a dataclass instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def check(predicate: Callable[[Any], bool], expected: str) -> dict[str, Any]:
    """Field metadata: a value is valid where ``predicate(value)`` holds."""
    return {"check": predicate, "expected": expected}


POSITIVE = check(lambda v: v > 0, "a positive number")
NON_NEGATIVE = check(lambda v: v >= 0, "a non-negative number")
POSITIVE_INT = check(lambda v: v >= 1, "a positive integer")
NON_NEGATIVE_INT = check(lambda v: v >= 0, "a non-negative integer")
UNIT_CLOSED = check(lambda v: 0 <= v <= 1, "a number in [0, 1]")
UNIT_HALF_OPEN = check(lambda v: 0 < v <= 1, "a number in (0, 1]")
UNIT_RIGHT_OPEN = check(lambda v: 0 <= v < 1, "a number in [0, 1)")
AT_LEAST_ONE = check(lambda v: v >= 1, "a number >= 1")


def option(default: Any, rule: dict[str, Any] | None = None, doc: str = "") -> Any:
    """A plug-in option: its default, its range ``rule`` (e.g. :data:`POSITIVE`) and one line
    of documentation (shown in the config's comments and ``--help``)."""
    return dataclasses.field(default=default, metadata={**(rule or {}), "doc": doc})


def check_options(opts: Any, where: str) -> None:
    """Refuse (ValueError naming ``where.FIELD``) a field of the dataclass ``opts`` outside its
    range."""
    for f in dataclasses.fields(opts):
        rule = f.metadata.get("check")
        value = getattr(opts, f.name)
        if rule is not None and not rule(value):
            raise ValueError(
                f"{where}.{f.name}={value!r} is invalid: expected {f.metadata['expected']}"
            )


def make_options(options: type | None, values: dict[str, Any], owner: str, where: str) -> Any:
    """An instance of the dataclass ``options`` with ``values`` (defaults filled in, ranges
    checked as ``where.FIELD``), or None for a plug-in without options; ValueError names an
    unknown or invalid value, and ``owner`` (e.g. "selector 'ntom'")."""
    if options is None:
        if values:
            raise ValueError(f"{owner} takes no options, got {sorted(values)}")
        return None
    valid = [f.name for f in dataclasses.fields(options)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{owner} has no option {', '.join(unknown)}; valid: {', '.join(valid)}")
    opts = options(**values)
    check_options(opts, where)
    return opts
