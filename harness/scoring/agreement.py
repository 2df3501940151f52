"""How far a yes/no metric can be trusted: its agreement with another call on the same
items (the choice-based score, or human labels): the share of items where the two agree,
and Cohen's kappa (agreement beyond chance) with its 95% confidence interval from the
large-sample variance of Fleiss, Cohen and Everitt (1969), as statsmodels computes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

# Below this kappa, agreement is "fair" at best (Landis and Koch, 1977): the report warns.
LOW_KAPPA = 0.4


def agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """Agreement of two 0/1 calls on the same items (pairs with a None are left out):
    n, accuracy, kappa, kappa_low, kappa_high. Kappa is None when it is undefined (both
    calls give one and the same value on every item)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    pairs = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None]
    out: dict[str, float | int | None] = {"n": len(pairs), "accuracy": None, "kappa": None,
                                          "kappa_low": None, "kappa_high": None}
    if not pairs:
        return out
    x = np.array([p[0] for p in pairs]) >= 0.5
    y = np.array([p[1] for p in pairs]) >= 0.5
    out["accuracy"] = float(np.mean(x == y))
    table = np.array([[np.sum(x & y), np.sum(x & ~y)], [np.sum(~x & y), np.sum(~x & ~y)]])
    pe = (table.sum(1) / len(x)) @ (table.sum(0) / len(x))
    if np.isclose(pe, 1.0):
        return out
    with warnings.catch_warnings():  # its null-hypothesis z is 0/0 on tiny tables; unused here
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cohens_kappa(table, return_results=True)
    def finite(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    out.update(kappa=finite(res.kappa), kappa_low=finite(res.kappa_low),
               kappa_high=finite(res.kappa_upp))
    return out


def trust_warning(stats: dict[str, float | int | None]) -> str | None:
    """A short warning when agreement is too low or too thin to lean on; None when fine."""
    if not stats.get("n"):
        return "no items to compare"
    kappa = stats.get("kappa")
    if kappa is None:
        return "kappa undefined (one value everywhere)"
    if kappa < LOW_KAPPA:
        return f"low agreement (kappa {kappa:.2f} < {LOW_KAPPA})"
    return None
