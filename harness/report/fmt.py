"""How the report writes numbers and names: one copy of each formatter and label.

Every cell of every table is text made here; a value that does not exist is written NA
(and shown muted), never 0."""

from __future__ import annotations

import math
from typing import Any

from harness.stats import Estimate

NA = "n/a"
CANNOT_CITE = "cannot cite"
NOT_TUNED = "not tuned"
NOT_MEASURED = "not measured"
DASH = "—"
MUTED = {NA, CANNOT_CITE, NOT_TUNED, NOT_MEASURED, DASH}  # cells the HTML shows greyed


def number(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NA
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def signed(x: float, digits: int = 3) -> str:
    return NA if math.isnan(x) else f"{x:+.{digits}f}"


def signed_ci(x: float, low: float, high: float, digits: int = 2) -> str:
    """'+7.13 [+4.32, +8.85]'; the bare change where no interval was recorded."""
    return signed(x, digits) + ("" if math.isnan(low) else f" [{low:+.{digits}f}, {high:+.{digits}f}]")


def usd(x: float) -> str:
    if math.isnan(x):
        return NA
    if x == 0:
        return "$0"
    if abs(x) < 1e-6:
        return "< $0.000001"
    return f"${x:.2g}" if abs(x) < 0.01 else f"${x:.3g}" if abs(x) < 1 else f"${x:,.2f}"


def seconds(x: float) -> str:
    if math.isnan(x):
        return NA
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:,.1f} s"


def queries(x: float) -> str:
    if math.isnan(x):
        return NA
    if math.isinf(x):
        return "never"
    return "from the first" if x == 0 else f"{math.ceil(x):,}"


def ci(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def integer(x: float) -> str:
    return NA if math.isnan(x) else f"{int(round(x)):,}"


def nbytes(x: float) -> str:
    if math.isnan(x) or x == 0:
        return DASH
    for unit in ("B", "KB", "MB", "GB"):
        if x < 1024 or unit == "GB":
            return f"{x:,.1f} {unit}" if unit != "B" else f"{int(x)} B"
        x /= 1024
    return NA


def share(x: float) -> str:
    """A fraction as a percentage ('<1%' below one per cent)."""
    if math.isnan(x):
        return NA
    return "<1%" if x < 0.01 else f"{x:.0%}"


NO_UPDATE = "none"  # the update mode of a strategy with nothing to update


def with_mode(variant: str, mode: str) -> str:
    """A variant under one of its freshness update modes: 'rag [reindex]'."""
    return variant if mode == NO_UPDATE else f"{variant} [{mode}]"
