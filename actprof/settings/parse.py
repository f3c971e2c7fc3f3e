"""The parsers of comma-list options, and the two checks every config's ``__post_init__`` uses."""

from __future__ import annotations

import math
from collections.abc import Sequence

from actprof.errors import UsageError


def parse_choices(
    spec: str, choices: Sequence[str], option: str, *, allow_all: bool = False, what: str | None = None
) -> list[str]:
    """A comma list of names from ``choices``, lower-cased, in the order given, without repeats.

    ``allow_all``: the word ``all`` on its own stands for every choice. ``what`` names the
    kind of value in the error (default: the option itself, as in "unknown --provider 'tpu'").
    """
    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    listed = ", ".join(choices) + (", or 'all'" if allow_all else "")
    if not items:
        raise UsageError(f"{option} is empty; choose from: {listed}")
    if allow_all and items == ["all"]:
        return list(choices)
    bad = next((s for s in items if s not in choices), None)
    if bad is not None:
        shown = bad if what else spec
        raise UsageError(f"unknown {what or option} {shown!r}; choose from: {listed}")
    return list(dict.fromkeys(items))


def parse_one(spec: str, choices: Sequence[str], option: str) -> str:
    """One name from ``choices`` (a list is refused: the option takes one)."""
    chosen = parse_choices(spec, choices, option)
    require(len(chosen) == 1, f"{option} takes one of: {', '.join(choices)}")
    return chosen[0]


def parse_positive_ints(spec: str, option: str, *, limit: int = 65536) -> list[int]:
    """A comma list of integers from 1 to ``limit``, without repeats."""
    try:
        values = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option} must be a comma list of positive integers, got {spec!r}") from None
    if not values or any(v < 1 or v > limit for v in values):
        raise UsageError(f"{option} must be a comma list of integers from 1 to {limit}, got {spec!r}")
    return list(dict.fromkeys(values))


def parse_positive_floats(spec: str, option: str) -> list[float]:
    """A comma list of finite positive numbers (``3e-4,1e-3``), in the order given, without repeats."""
    try:
        values = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option} must be a comma list of positive numbers, got {spec!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise UsageError(f"{option} must be a comma list of finite positive numbers, got {spec!r}")
    return list(dict.fromkeys(values))


def require(condition: bool, message: str) -> None:
    """A UsageError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)


def one_of(value: str, choices: Sequence[str], option: str) -> None:
    require(value in choices, f"unknown {option} {value!r}; choose from: {', '.join(choices)}")
