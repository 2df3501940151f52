"""Agreement statistics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from harness.scoring.agreement import agreement, trust_warning


def _calls(table):
    """Two 0/1 call lists from a 2x2 table [[both 1, a 1 b 0], [a 0 b 1, both 0]]."""
    (n11, n10), (n01, n00) = table
    a = [1] * n11 + [1] * n10 + [0] * n01 + [0] * n00
    b = [1] * n11 + [0] * n10 + [1] * n01 + [0] * n00
    return a, b


def test_kappa_and_its_interval_by_hand():
    a, b = _calls([[20, 5], [10, 15]])
    s = agreement(a, b)
    n = 50
    po = 35 / n  # 0.7
    r, c = [25 / n, 25 / n], [30 / n, 20 / n]  # a's and b's marginals
    pe = r[0] * c[0] + r[1] * c[1]  # 0.5
    kappa = (po - pe) / (1 - pe)  # 0.4
    p = [[20 / n, 5 / n], [10 / n, 15 / n]]
    # Fleiss, Cohen and Everitt (1969), the large-sample variance of kappa
    diag = sum(p[i][i] * (1 - (r[i] + c[i]) * (1 - kappa)) ** 2 for i in range(2))
    off = (1 - kappa) ** 2 * sum(p[i][j] * (c[i] + r[j]) ** 2
                                 for i in range(2) for j in range(2) if i != j)
    se = math.sqrt((diag + off - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2))
    assert s["n"] == 50 and s["accuracy"] == pytest.approx(0.7)
    assert s["kappa"] == pytest.approx(0.4)
    assert s["kappa_low"] == pytest.approx(kappa - 1.959964 * se, abs=1e-5)
    assert s["kappa_high"] == pytest.approx(kappa + 1.959964 * se, abs=1e-5)
    assert trust_warning(s).startswith("low agreement")  # 0.4 is only "fair"


def test_perfect_chance_and_undefined():
    a, b = _calls([[10, 0], [0, 10]])
    assert agreement(a, b)["kappa"] == pytest.approx(1.0)
    assert trust_warning(agreement(a, b)) is None
    a, b = _calls([[5, 5], [5, 5]])  # agreement at chance
    s = agreement(a, b)
    assert s["kappa"] == pytest.approx(0.0) and "low agreement" in trust_warning(s)
    s = agreement([1, 1, 1], [1, 1, 1])  # one value everywhere: kappa undefined
    assert s["accuracy"] == 1.0 and s["kappa"] is None
    assert "undefined" in trust_warning(s)


def test_pairs_with_a_missing_call_are_left_out():
    s = agreement([1, None, 0, 1], [1, 1, None, 0])
    assert s["n"] == 2 and s["accuracy"] == 0.5
    assert agreement([], [])["n"] == 0 and trust_warning(agreement([], [])) == "no items to compare"
