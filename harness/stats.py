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
    n_clusters: int | None = None  # None: items resampled one by one
    design_effect: float = math.nan  # variance clustered / independent (1: no clustering)

    @property
    def effective_items(self) -> float:
        """The number of independent items the clustered set is worth (n / design effect)."""
        d = self.design_effect
        return self.n_items / d if d == d and d > 0 else float(self.n_items)


def cluster_ids(labels: Sequence[object] | None) -> np.ndarray | None:
    """Per item, its cluster's index (0..C-1) from any labels; None when there are no labels
    or every item is its own cluster (nothing to cluster)."""
    if labels is None:
        return None
    index: dict[object, int] = {}
    ids = np.array([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)
    return ids if len(index) < len(ids) else None


def _resampled_means(m: np.ndarray, clusters: np.ndarray | None, n_boot: int,
                     rng: np.random.Generator) -> np.ndarray:
    """seeds x n_boot means of the items resampled: one by one, or (clusters) whole clusters
    with replacement, every item of a drawn cluster in (the mean over the items drawn)."""
    n_seeds, n_items = m.shape
    if clusters is None:
        return m[:, rng.integers(0, n_items, size=(n_boot, n_items))].mean(axis=2)
    n_c = int(clusters.max()) + 1
    sums = np.zeros((n_seeds, n_c))
    for s in range(n_seeds):
        np.add.at(sums[s], clusters, m[s])
    counts = np.bincount(clusters, minlength=n_c).astype(float)
    draws = rng.integers(0, n_c, size=(n_boot, n_c))
    return sums[:, draws].sum(axis=2) / counts[draws].sum(axis=1)


def bootstrap_ci(outcomes: np.ndarray, *, clusters: np.ndarray | None = None,
                 n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap CI that resamples items (with `clusters`, per item
    its cluster index: whole clusters, the unit that was sampled; Miller 2024) and, when
    there are several, seeds too (two-stage: seeds with replacement, then items or clusters
    with replacement). With clusters, the design effect is the ratio of the clustered
    bootstrap variance to the independent one."""
    m = np.atleast_2d(np.asarray(outcomes, dtype=float))
    n_seeds, n_items = m.shape
    rng = np.random.default_rng(seed)
    per_seed = _resampled_means(m, clusters, n_boot, rng)  # seeds x n_boot
    if n_seeds > 1:
        seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        boots = np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)
    else:
        boots = per_seed[0]
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    if clusters is None:
        return Estimate(float(m.mean()), float(low), float(high), n_items, n_seeds)
    flat = _resampled_means(m.mean(axis=0, keepdims=True), None, n_boot,
                            np.random.default_rng(seed + 1))[0]
    clustered = _resampled_means(m.mean(axis=0, keepdims=True), clusters, n_boot,
                                 np.random.default_rng(seed + 1))[0]
    deff = float(clustered.var() / flat.var()) if flat.var() > 0 else math.nan
    return Estimate(float(m.mean()), float(low), float(high), n_items, n_seeds,
                    int(clusters.max()) + 1, deff)


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
    design_effect: float = math.nan  # clustered: the difference's variance over independent
    superior: float = math.nan  # P(A > B) over seeds and item (cluster) resamples
    superior_low: float = math.nan  # its 95% interval (several seeds on both sides)
    superior_high: float = math.nan

    @property
    def mcnemar(self) -> bool:
        return self.test.startswith("McNemar")

    @property
    def discordance(self) -> float | None:
        """Of one seed of 0/1 outcomes: the share of items exactly one of the two got right."""
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


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, clusters: np.ndarray | None = None,
                     n_boot: int = N_BOOT, seed: int = 0
                     ) -> tuple[float, float, float, float, float]:
    """Paired bootstrap over items (with `clusters`: over whole clusters of paired
    differences) of the difference of per-item means (each variant's seeds averaged first):
    (diff, CI low, CI high, two-sided p, standard deviation of the resampled differences).
    The p-value is twice the smaller share of resampled differences on either side of zero
    (at least 1/n_boot)."""
    da = np.atleast_2d(np.asarray(a, dtype=float)).mean(axis=0)
    db = np.atleast_2d(np.asarray(b, dtype=float)).mean(axis=0)
    d = da - db
    rng = np.random.default_rng(seed)
    boots = _resampled_means(d[None, :], clusters, n_boot, rng)[0]
    low, high = np.quantile(boots, [0.025, 0.975])
    if np.all(d == 0):
        p = 1.0
    else:
        p = min(1.0, 2 * min(np.mean(boots <= 0), np.mean(boots >= 0)))
        p = max(p, 1.0 / n_boot)
    return float(d.mean()), float(low), float(high), float(p), float(boots.std())


def paired_test(a: np.ndarray, b: np.ndarray, *, clusters: np.ndarray | None = None,
                seed: int = 0) -> PairedTest:
    """McNemar's exact test when both sides are one seed of 0/1 outcomes on independent
    items; otherwise the paired bootstrap p-value (over clusters of paired differences when
    items share a cluster: McNemar's test assumes independent items). The difference's CI
    is the paired bootstrap's either way; one seed of 0/1 outcomes also counts the items
    only A / only B got right (the explorer's pair filter)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    diff, low, high, p_boot, se = paired_bootstrap(a, b, clusters=clusters, seed=seed)
    binary = all(np.isin(x, (0.0, 1.0)).all() for x in (a, b))
    counts = mcnemar_exact(a[0], b[0]) if a.shape[0] == 1 and b.shape[0] == 1 and binary else None
    if counts is not None and clusters is None:
        p, a_only, b_only = counts
        return PairedTest(diff, low, high, p, "McNemar (exact)", a.shape[1], a_only, b_only, se)
    name = "paired cluster bootstrap" if clusters is not None else "paired bootstrap"
    extra = {"a_only": counts[1], "b_only": counts[2]} if counts else {}
    deff = math.nan
    if clusters is not None:
        flat = paired_bootstrap(a, b, n_boot=N_BOOT, seed=seed)[4]
        deff = (se / flat) ** 2 if flat > 0 else math.nan
    return PairedTest(diff, low, high, p_boot, name, a.shape[1], se=se, design_effect=deff,
                      **extra)


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


@dataclass(frozen=True)
class Superiority:
    """P(A > B): how often A scores above B when the test items (or their clusters) and each
    variant's training seeds are drawn again (Bouthillier et al. 2021, arXiv 2103.03098).
    Ties count half. low/high: its 95% percentile interval over the item draws, when both
    ran several seeds (with one seed each, every draw is a single comparison: no interval)."""
    p: float
    low: float
    high: float
    seed_pairs: int


def prob_superior(a: np.ndarray, b: np.ndarray, *, clusters: np.ndarray | None = None,
                  n_boot: int = 2000, seed: int = 0) -> Superiority:
    """a, b: seeds x items on the same items. Each draw resamples the items (clusters) once,
    for both; within it, every pair of A's and B's seeds is compared."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    weights = _draw_weights(a.shape[1], clusters, n_boot, seed)
    total = weights.sum(axis=1)
    ma, mb = a @ weights.T / total, b @ weights.T / total  # seeds x draws
    wins = (ma[:, None, :] > mb[None, :, :]) + 0.5 * (ma[:, None, :] == mb[None, :, :])
    per_draw = wins.mean(axis=(0, 1))
    pairs = a.shape[0] * b.shape[0]
    low, high = (np.quantile(per_draw, [0.025, 0.975]) if pairs > 1 else (math.nan, math.nan))
    return Superiority(float(per_draw.mean()), float(low), float(high), pairs)


_WEIGHTS: dict[tuple, np.ndarray] = {}  # the last draws, shared by every pair on the same items


def _draw_weights(n_items: int, clusters: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """n_boot x n_items: how many times each item was drawn (clusters: whole clusters)."""
    key = (n_items, n_boot, seed, None if clusters is None else clusters.tobytes())
    if key in _WEIGHTS:
        return _WEIGHTS[key]
    rng = np.random.default_rng(seed)
    units = n_items if clusters is None else int(clusters.max()) + 1
    counts = np.zeros((n_boot, units))
    np.add.at(counts, (np.repeat(np.arange(n_boot), units),
                       rng.integers(0, units, size=n_boot * units)), 1.0)
    _WEIGHTS.clear()
    _WEIGHTS[key] = counts if clusters is None else counts[:, clusters]
    return _WEIGHTS[key]
