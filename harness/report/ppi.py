"""Prediction-powered accuracy: an automatic metric on every item, corrected by human
labels on a slice of them.

An automatic call (judge, semantic, contains) is cheap on every item but has errors of
its own, so its mean is a biased estimate of the accuracy a human would give. Labels are
unbiased but few. Prediction-powered inference (Angelopoulos, Bates, Fannjiang, Jordan
and Zrnic 2023, Science 382:669) combines them: the metric's mean on the unlabelled
items, plus the mean of the labels' correction (label - metric) on the labelled slice.
The estimate is unbiased whatever the metric's errors, and its normal interval is valid
when the labelled slice is a random sample of the items.

With power tuning (PPI++: Angelopoulos, Duchi and Zrnic 2023, arXiv:2311.01453) the
metric is scaled by lam = Cov(y, f) / ((1 + n/N) Var(f)), clipped to [0, 1]; lam = 0 is
the labels alone, lam = 1 plain PPI. For n labelled and N unlabelled items:

    theta = lam * mean_U(f) + mean_L(y - lam * f)
    se^2  = lam^2 Var_U(f) / N + Var_L(y - lam * f) / n

The paired difference of two variants is the same estimator on per-item differences
(y_A - y_B, f_A - f_B) over items labelled for both. When lam is 0 and the labels are
yes/no, the estimate is the labelled share with its exact binomial interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as t_dist


@dataclass(frozen=True)
class PPIEstimate:
    mean: float
    low: float
    high: float
    se: float
    lam: float  # the metric's weight (0: labels alone; 1: plain PPI)
    n_labelled: int
    n_unlabelled: int

    @property
    def p_value(self) -> float:
        """Two-sided p of the hypothesis that the quantity is 0 (for a paired difference)."""
        if not self.se > 0:
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * norm.sf(abs(self.mean) / self.se))


def ppi_mean(y, f_labelled, f_unlabelled, *, level: float = 0.95,
             tune: bool = True) -> PPIEstimate:
    """The prediction-powered mean of y (see the module's formula) with its `level`
    normal interval; y and f_labelled are paired, f_unlabelled the metric elsewhere."""
    y, fl, fu = (np.asarray(a, dtype=float) for a in (y, f_labelled, f_unlabelled))
    n, big_n = len(y), len(fu)
    if n < 2:
        return PPIEstimate(math.nan, math.nan, math.nan, math.nan, math.nan, n, big_n)
    lam = 1.0
    if big_n < 2:
        lam = 0.0  # nothing unlabelled to borrow from: the labels alone
    elif tune:
        f_all = np.concatenate([fl, fu])
        var_f = f_all.var(ddof=1)
        cov = np.cov(y, fl, ddof=1)[0, 1] if fl.std() > 0 and y.std() > 0 else 0.0
        lam = float(np.clip(cov / ((1 + n / big_n) * var_f), 0, 1)) if var_f > 0 else 0.0
    if lam == 0 and np.isin(y, (0.0, 1.0)).all():
        return _labels_alone(y, level, big_n)
    theta = (lam * fu.mean() if big_n else 0.0) + (y - lam * fl).mean()
    var = (y - lam * fl).var(ddof=1) / n
    if lam and big_n > 1:
        var += lam * lam * fu.var(ddof=1) / big_n
    se = math.sqrt(var)
    z = t_dist.ppf(0.5 + level / 2, n - 1)  # Student t: the labelled slice is small
    return PPIEstimate(float(theta), float(theta - z * se), float(theta + z * se), se, lam, n,
                       big_n)


def _labels_alone(y: np.ndarray, level: float, big_n: int) -> PPIEstimate:
    """The metric weighs nothing: the labelled share with its exact (Clopper-Pearson)
    interval, which stays honest where a normal one collapses (20 labels all wrong give
    [0, 0.168], not [0, 0])."""
    k, n = int(y.sum()), len(y)
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    share = k / n
    return PPIEstimate(share, float(ci.low), float(ci.high), math.sqrt(share * (1 - share) / n),
                       0.0, n, big_n)
