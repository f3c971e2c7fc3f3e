"""How numbers are written in every table: percentages, counts, sizes, intervals; "—" for none."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actprof.schema.profiling import Interval


def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n:,.0f} GiB"


def interval(iv: Interval | None, fmt: str = ".2f", unit: str = "") -> str:
    if iv is None or math.isnan(iv.value):
        return "—"
    return f"{iv.value:{fmt}}{unit} [{iv.low:{fmt}}, {iv.high:{fmt}}]"


def p_cell(p: float) -> str:
    """A p-value in a table's "p" column: "0.040", "< 0.001" (never a rounded 0.000); "—" for none."""
    if math.isnan(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_words(p: float) -> str:
    """A p-value in a sentence: "p = 0.040", "p < 0.001"."""
    return f"p {p_cell(p)}" if p < 0.001 else f"p = {p_cell(p)}"
