"""How large a difference a paired comparison on this test set could have detected.

A "not significant" verdict on 72 items often means the set was too small to tell two
variants apart, not that they are equal. For every paired test the report gives the
minimum detectable difference (MDE): the smallest true difference the same test would
find with probability POWER at level ALPHA (two-sided, before Holm's correction).

- One seed of 0/1 outcomes (McNemar's exact test): the exact power of the exact test.
  Of n items a share psi is discordant (one variant right, the other wrong); the number
  of discordant items is Binomial(n, psi), and given d of them, A's share is
  Binomial(d, (psi + diff) / (2 psi)). The test rejects where the two-sided binomial
  p-value of that split is below ALPHA. psi is the observed discordance, and at least
  the difference itself (a difference of diff needs diff of the items discordant).
- Otherwise (scores, several seeds, or items that share a cluster: the paired bootstrap,
  over clusters where there are some): the normal approximation
  MDE = (z_{1-ALPHA/2} + z_POWER) x SE, with SE the paired bootstrap's standard deviation
  of the mean difference (clustered: larger by the square root of the design effect).

Items needed for a given difference (the Methods line) use the normal approximation for
paired proportions (Connor 1987, Biometrics 43:207): n = (z_a sqrt(psi) + z_b sqrt(psi -
diff^2))^2 / diff^2.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
from scipy.stats import binom, norm

from harness.stats import ALPHA, PairedTest

POWER = 0.80
# A "real tie": the 95% CI of the difference lies inside +-this margin (report.equivalence_margin)
EQUIVALENCE = 0.05


@lru_cache(maxsize=64)
def _mcnemar_cut(n: int, alpha: float) -> np.ndarray:
    """For d = 0..n discordant items: the largest count c with the exact two-sided test
    rejecting at c (and, by symmetry, at d - c); -1 where no split of d rejects."""
    cut = np.full(n + 1, -1, dtype=int)
    for d in range(1, n + 1):
        k = np.arange(d // 2 + 1)
        p = np.minimum(1.0, 2 * binom.cdf(k, d, 0.5))
        below = np.nonzero(p < alpha)[0]
        if below.size:
            cut[d] = int(below[-1])
    return cut


def mcnemar_power(n: int, discordance: float, diff: float, alpha: float = ALPHA) -> float:
    """The probability that McNemar's exact test at `alpha` rejects on n paired items when
    a share `discordance` of them is discordant and the true difference is `diff`."""
    diff = abs(diff)
    psi = min(1.0, max(discordance, diff))
    if n < 1 or psi <= 0:
        return 0.0
    d = np.arange(n + 1)
    cut = _mcnemar_cut(n, alpha)
    q = (psi + diff) / (2 * psi)  # A's share of the discordant items
    reject = np.where(cut >= 0, binom.cdf(cut, d, q) + binom.sf(d - cut - 1, d, q), 0.0)
    return float(np.sum(binom.pmf(d, n, psi) * reject))


def mcnemar_mde(n: int, discordance: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest difference McNemar's exact test detects with `power` (bisection; the
    power rises with the difference). nan when even a difference of 1 is not detected."""
    if mcnemar_power(n, discordance, 1.0, alpha) < power:
        return math.nan
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if mcnemar_power(n, discordance, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def normal_mde(se: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """MDE of a two-sided test on a normally distributed difference with standard error se."""
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def items_needed(diff: float, discordance: float, power: float = POWER,
                 alpha: float = ALPHA) -> int:
    """Paired items needed to detect `diff` at this discordance (Connor 1987)."""
    psi = max(discordance, abs(diff))
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return math.ceil((za * math.sqrt(psi) + zb * math.sqrt(max(psi - diff * diff, 0.0))) ** 2
                     / (diff * diff))


def detectable(test: PairedTest, power: float = POWER, alpha: float = ALPHA) -> float:
    """The minimum detectable difference of the test a pair was given: McNemar's exact
    power where it was McNemar, the bootstrap's normal approximation otherwise."""
    if test.mcnemar and test.discordance is not None:
        return mcnemar_mde(test.n_items, test.discordance, power, alpha)
    return normal_mde(test.se, power, alpha) if test.se == test.se else math.nan


def with_power(test: PairedTest, margin: float = EQUIVALENCE) -> PairedTest:
    """The test with its minimum detectable difference, and whether its interval shows the
    two equivalent within +-margin."""
    return dataclasses.replace(test, mde=detectable(test),
                               equivalent=-margin <= test.low and test.high <= margin)


def points(x: float) -> str:
    """A difference in [0, 1] as percentage points: '14.2 points'."""
    return "n/a" if x != x else f"{100 * x:.1f} points"
