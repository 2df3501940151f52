"""The expected best of n random trials (Dodge et al. 2019): the closed form against brute
force over every sequence of draws and against a simulation; the band; the budget verdict;
and the optimism of the best of k equally good variants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.report.expected_best import (
    Curve,
    band,
    budget_lines,
    curve,
    expected_best,
    expected_max_normal,
)


@pytest.mark.parametrize("values", [[0.3], [0.2, 0.5, 0.5, 0.9], [0.1, 0.4, 0.35, 0.8, 0.6],
                                    [1.0, 1.0, 0.0]])
def test_the_closed_form_equals_brute_force_enumeration(values):
    for n in range(1, 5):  # every one of the N^n equally likely sequences of n draws
        brute = np.mean([max(seq) for seq in itertools.product(values, repeat=n)])
        assert expected_best(values, n) == pytest.approx(brute, abs=1e-12)


def test_the_closed_form_matches_a_simulation():
    rng = np.random.default_rng(1)
    values = rng.beta(2, 5, size=12)
    for n in (1, 3, 8, 20):
        draws = rng.choice(values, size=(200_000, n), replace=True).max(axis=1)
        assert expected_best(values, n) == pytest.approx(draws.mean(), abs=3e-3)


def test_the_curve_runs_from_the_mean_to_the_best_and_the_band_holds_it():
    values = [0.2, 0.4, 0.5, 0.55, 0.7, 0.71]
    ns = np.arange(1, 7)
    c = curve(values, ns)
    assert c[0] == pytest.approx(np.mean(values)) and np.all(np.diff(c) >= 0) and c[-1] < 0.71
    low, high = band(values, ns, resamples=500)
    assert np.all(low <= c + 1e-9) and np.all(c <= high + 1e-9) and np.all(high <= 0.71 + 1e-9)


def test_the_budget_verdict_says_rising_flat_and_whether_the_ranking_could_change():
    flat = Curve.of("prompt", [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [1.0] * 6)
    rising = Curve.of("lora", [0.2, 0.3, 0.35, 0.45, 0.3, 0.49], [2.0] * 6)
    assert not flat.rising and rising.rising and rising.last_doubling_gain > 0.01
    line = budget_lines([flat, rising])[0]
    assert "prompt flat" in line and "lora still rising" in line
    assert "lora could reach prompt" in line
    far = Curve.of("full", [0.0, 0.1, 0.0, 0.2, 0.0, 0.25], [2.0] * 6)
    assert far.rising and far.last_doubling_gain < flat.at_budget - far.at_budget
    assert "too far below" in budget_lines([flat, far])[0]
    assert "unlikely to change" in budget_lines([flat, Curve.of("x", [0.1] * 4, [1.0] * 4)])[0]


def test_the_expected_maximum_of_standard_normals():
    # known values: 1/sqrt(pi) for 2, 1.0294 for 4 (Tippett's tables)
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / np.sqrt(np.pi), abs=1e-6)
    assert expected_max_normal(4) == pytest.approx(1.0294, abs=1e-4)
    sim = np.random.default_rng(0).standard_normal((200_000, 6)).max(axis=1).mean()
    assert expected_max_normal(6) == pytest.approx(sim, abs=0.01)
