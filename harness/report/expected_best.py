"""The expected best validation score of n random trials (Dodge et al. 2019, "Show Your
Work"), with a bootstrap band, and what a larger budget would likely do.

With the N observed trial scores sorted as v(1) <= ... <= v(N), the best of n trials drawn
from them with replacement is v(i) with probability (i/N)^n - ((i-1)/N)^n, so

    E[best of n] = sum_i v(i) * ((i/N)^n - ((i-1)/N)^n)

At n = 1 it is the mean score; as n grows it approaches the best score seen. The band
resamples the N trials (with replacement) and recomputes the curve. Also the expected
optimism of picking the best of k equally good variants on the data that scores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RISING = 0.01  # a last doubling of the budget that gained this much (1 point): still rising


def expected_best(values: Sequence[float], n: int) -> float:
    """E[max of n draws with replacement from `values`]."""
    v = np.sort(np.asarray(values, dtype=float))
    if v.size == 0 or n < 1:
        return math.nan
    i = np.arange(1, v.size + 1)
    weights = (i / v.size) ** n - ((i - 1) / v.size) ** n
    return float(np.sum(v * weights))


def curve(values: Sequence[float], ns: Sequence[int]) -> np.ndarray:
    return np.array([expected_best(values, n) for n in ns])


def band(values: Sequence[float], ns: Sequence[int], *, resamples: int = 2000,
         level: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A percentile bootstrap band of the curve: the trials resampled with replacement."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    draws = np.array([curve(v[rng.integers(0, v.size, v.size)], ns) for _ in range(resamples)])
    tail = (1 - level) / 2 * 100
    return np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)


@dataclass(frozen=True)
class Curve:
    """One strategy's expected-best curve over 1..N trials, and over their expected cost."""
    strategy: str
    ns: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    cost_per_trial_usd: float  # mean modelled cost of one trial (NaN: unpriced)

    @classmethod
    def of(cls, strategy: str, values: Sequence[float], costs: Sequence[float]) -> Curve:
        ns = np.arange(1, len(values) + 1)
        low, high = band(values, ns)
        known = [c for c in costs if not math.isnan(c)]
        return cls(strategy, ns, curve(values, ns), low, high,
                   float(np.mean(known)) if known else math.nan)

    @property
    def at_budget(self) -> float:
        return float(self.mean[-1])

    @property
    def last_doubling_gain(self) -> float:
        """What the second half of the budget added: E[best of N] - E[best of ceil(N/2)]."""
        half = max(1, math.ceil(len(self.ns) / 2))
        return float(self.mean[-1] - self.mean[half - 1]) if len(self.ns) > 1 else math.nan

    @property
    def rising(self) -> bool:
        gain = self.last_doubling_gain
        return not math.isnan(gain) and gain >= RISING


def budget_lines(curves: list[Curve]) -> list[str]:
    """Would a larger budget likely change the ranking? Each curve is still rising at its
    budget or flat; a rising curve below another could close the gap if another doubling of
    its budget gained what the last one did."""
    if not curves:
        return []
    ranked = sorted(curves, key=lambda c: -c.at_budget)
    state = "; ".join(f"{c.strategy} {'still rising' if c.rising else 'flat'} "
                      f"(+{max(c.last_doubling_gain, 0):.3f} from the second half of its "
                      f"{len(c.ns)} trials)" for c in ranked if len(c.ns) > 1)
    closers = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]
               if b.rising and b.last_doubling_gain >= a.at_budget - b.at_budget]
    if closers:
        what = ", ".join(f"{b.strategy} could reach {a.strategy}" for a, b in closers)
        verdict = (f"a larger budget could change the ranking: {what} if another doubling of "
                   "its trials gained as much as the last")
    elif any(c.rising for c in ranked):
        verdict = ("the curves still rising lie too far below the ones above them for another "
                   "doubling at the same rate to change the ranking")
    else:
        verdict = "every curve is flat, so more trials of these spaces are unlikely to change it"
    return [f"Tuning budget: {state}. {verdict[0].upper()}{verdict[1:]}."] if state else []


def expected_max_normal(k: int) -> float:
    """E[max of k independent standard normals] (0 for k = 1)."""
    if k <= 1:
        return 0.0
    from scipy.integrate import trapezoid
    from scipy.stats import norm

    x = np.linspace(-8, 8, 16001)
    density = k * norm.pdf(x) * norm.cdf(x) ** (k - 1)
    return float(trapezoid(x * density, x))
