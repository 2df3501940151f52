"""Statistics for the report (and the tracking's intervals): bootstrap confidence intervals
over items and seeds, paired tests between strategies on the same items, Holm's correction,
and Pareto fronts.

Outcome matrices are (seeds x items): row s holds seed s's per-item scores (1/0 for
choice accuracy, or a score in [0, 1]) on items in a fixed order shared by every variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

N_BOOT = 5000
ALPHA = 0.05  # significance level of every verdict in the report (Holm-adjusted)


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n_items: int
    n_seeds: int


def bootstrap_ci(outcomes: np.ndarray, *, n_boot: int = N_BOOT, level: float = 0.95,
                 seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap CI that resamples items and, when there are
    several, seeds too (two-stage: seeds with replacement, items with replacement)."""
    m = np.atleast_2d(np.asarray(outcomes, dtype=float))
    n_seeds, n_items = m.shape
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n_items, size=(n_boot, n_items))
    per_seed = m[:, items].mean(axis=2)  # seeds x n_boot
    if n_seeds > 1:
        seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        boots = np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)
    else:
        boots = per_seed[0]
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return Estimate(float(m.mean()), float(low), float(high), n_items, n_seeds)


@dataclass(frozen=True)
class PairedTest:
    diff: float  # mean(a) - mean(b) on the shared items
    low: float  # 95% bootstrap CI of the difference
    high: float
    p_value: float
    test: str  # "McNemar (exact)" or "paired bootstrap"
    n_items: int
    a_only: int | None = None  # McNemar: items a got right and b wrong
    b_only: int | None = None
    se: float = math.nan  # the paired bootstrap's standard deviation of the difference
    mde: float = math.nan  # minimum detectable difference (harness.report.power)
    equivalent: bool = False  # the CI lies inside +-the equivalence margin (a real tie)

    @property
    def discordance(self) -> float | None:
        """McNemar: the share of items exactly one of the two got right."""
        if self.a_only is None or self.b_only is None or not self.n_items:
            return None
        return (self.a_only + self.b_only) / self.n_items


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> tuple[float, int, int]:
    """Exact (binomial) McNemar test on paired 0/1 outcomes: (two-sided p, a-only, b-only)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)
    return p, a_only, b_only


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_boot: int = N_BOOT,
                     seed: int = 0) -> tuple[float, float, float, float, float]:
    """Paired bootstrap over items of the difference of per-item means (each variant's
    seeds averaged first): (diff, CI low, CI high, two-sided p, standard deviation of the
    resampled differences). The p-value is twice the
    smaller share of resampled differences on either side of zero (at least 1/n_boot)."""
    da = np.atleast_2d(np.asarray(a, dtype=float)).mean(axis=0)
    db = np.atleast_2d(np.asarray(b, dtype=float)).mean(axis=0)
    d = da - db
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    low, high = np.quantile(boots, [0.025, 0.975])
    if np.all(d == 0):
        p = 1.0
    else:
        p = min(1.0, 2 * min(np.mean(boots <= 0), np.mean(boots >= 0)))
        p = max(p, 1.0 / n_boot)
    return float(d.mean()), float(low), float(high), float(p), float(boots.std())


def paired_test(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> PairedTest:
    """McNemar's exact test when both sides are one seed of 0/1 outcomes; otherwise the
    paired bootstrap p-value. The difference's CI is the paired bootstrap's either way."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    diff, low, high, p_boot, se = paired_bootstrap(a, b, seed=seed)
    binary = all(np.isin(x, (0.0, 1.0)).all() for x in (a, b))
    if a.shape[0] == 1 and b.shape[0] == 1 and binary:
        p, a_only, b_only = mcnemar_exact(a[0], b[0])
        return PairedTest(diff, low, high, p, "McNemar (exact)", a.shape[1], a_only, b_only, se)
    return PairedTest(diff, low, high, p_boot, "paired bootstrap", a.shape[1], se=se)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over all the pairs)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def pareto_front(benefit: Sequence[float], cost: Sequence[float]) -> list[bool]:
    """True for each point no other point dominates (at least as much benefit at no more
    cost, strictly better in one). NaN points are never on the front."""
    pts = list(zip(benefit, cost))
    on = []
    for i, (bi, ci) in enumerate(pts):
        if np.isnan(bi) or np.isnan(ci):
            on.append(False)
            continue
        dominated = any(
            j != i and not (np.isnan(bj) or np.isnan(cj))
            and bj >= bi and cj <= ci and (bj > bi or cj < ci)
            for j, (bj, cj) in enumerate(pts))
        on.append(not dominated)
    return on
