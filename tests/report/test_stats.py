"""The report's statistics against values computed by hand or by scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.cost.prices import api_usd_per_1k, break_even, usd
from harness.stats import (
    bootstrap_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    paired_test,
    pareto_front,
)


def test_mcnemar_exact_matches_hand_computed_binomial():
    # a right & b wrong on 8 items, the reverse on 2: p = 2 * P(X <= 2 | n=10, 1/2)
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    p, a_only, b_only = mcnemar_exact(a, b)
    assert (a_only, b_only) == (8, 2)
    assert p == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 0.109375
    assert p == pytest.approx(sps.binomtest(8, 10, 0.5).pvalue)


def test_mcnemar_without_discordant_items_is_one():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])[0] == 1.0


def test_bootstrap_ci_of_constant_outcomes_is_a_point():
    e = bootstrap_ci(np.ones((1, 40)))
    assert (e.mean, e.low, e.high) == (1.0, 1.0, 1.0)


def test_bootstrap_ci_matches_normal_approximation_for_many_items():
    rng = np.random.default_rng(1)
    x = (rng.random(2000) < 0.3).astype(float)
    e = bootstrap_ci(x[None, :], n_boot=4000)
    p, se = x.mean(), math.sqrt(x.mean() * (1 - x.mean()) / len(x))
    assert e.mean == pytest.approx(p)
    assert e.low == pytest.approx(p - 1.96 * se, abs=0.006)
    assert e.high == pytest.approx(p + 1.96 * se, abs=0.006)


def test_bootstrap_over_seeds_widens_the_interval_when_seeds_disagree():
    items = (np.arange(100) % 2).astype(float)
    same = np.vstack([items, items, items])
    varied = np.vstack([np.ones(100), np.zeros(100), items])  # seeds at 1.0, 0.0, 0.5
    narrow, wide = bootstrap_ci(same), bootstrap_ci(varied)
    assert narrow.mean == wide.mean == pytest.approx(0.5)
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)


def test_paired_bootstrap_difference_and_p_value():
    a = np.array([[1.0] * 30 + [0.0] * 10])
    b = np.array([[1.0] * 10 + [0.0] * 30])
    diff, low, high, p, _ = paired_bootstrap(a, b)
    assert diff == pytest.approx(0.5)
    assert low > 0 and high <= 1 and p < 0.001
    assert paired_bootstrap(a, a)[3] == 1.0


def test_paired_test_picks_mcnemar_for_one_seed_and_bootstrap_for_several():
    a, b = np.array([[1, 1, 0, 1]]), np.array([[0, 1, 0, 0]])
    assert paired_test(a, b).test == "McNemar (exact)"
    t = paired_test(np.vstack([a, a]), np.vstack([b, b]))
    assert t.test == "paired bootstrap" and t.diff == pytest.approx(0.5)


def test_holm_matches_hand_computed_values():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(2*0.03, .03), max(1*0.04, .06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_pareto_front_by_hand():
    acc = [0.9, 0.8, 0.95, 0.5, 0.9]
    cost = [10, 1, 100, 5, 20]
    # 0.5@5 is dominated by 0.8@1; 0.9@20 by 0.9@10
    assert pareto_front(acc, cost) == [True, True, True, False, False]
    assert pareto_front([0.5, float("nan")], [1, 1]) == [True, False]


def test_cost_formulas():
    assert usd(3600, 2.0) == pytest.approx(2.0)
    assert math.isnan(usd(10, None))
    # A: $10 to build, $0.001/query; B: $1 to build, $0.004/query -> (10-1)/(0.003) = 3000
    assert break_even(10, 0.001, 1, 0.004) == pytest.approx(3000)
    assert break_even(10, 0.005, 1, 0.004) == math.inf
    assert break_even(1, 0.001, 2, 0.004) == 0.0
    assert api_usd_per_1k(500, 10, {"input_per_mtok": 0.2, "output_per_mtok": 1.0}) \
        == pytest.approx(1000 * (500 * 0.2 + 10 * 1.0) / 1e6)
    # a run recorded under the old schema's names reads the same
    assert api_usd_per_1k(500, 10, {"input_usd_per_1m": 0.2, "output_usd_per_1m": 1.0}) \
        == api_usd_per_1k(500, 10, {"input_per_mtok": 0.2, "output_per_mtok": 1.0})


def test_break_even_treats_near_equal_per_query_costs_as_equal():
    # 10% apart, tolerance 15%: A is dearer to build and "the same" per query -> never
    assert break_even(10, 0.0009, 1, 0.001, same_within=0.15) == math.inf
    assert break_even(10, 0.0009, 1, 0.001) == pytest.approx(9 / 0.0001)
    assert break_even(1, 0.00095, 2, 0.001, same_within=0.15) == 0.0
