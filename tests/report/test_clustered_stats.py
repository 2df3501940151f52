"""Clustered intervals and P(A > B), checked by simulation with a known intra-cluster
correlation (Miller 2024, arXiv 2411.00640: resample the unit that was sampled; Bouthillier
et al. 2021, arXiv 2103.03098: how often A beats B over every source of variance)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.stats import bootstrap_ci, cluster_ids, paired_test, prob_superior

TRUE_MEAN = 0.6


def _sample(rng, n_clusters: int, size: int, icc: float) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes of n_clusters clusters of `size` items whose success probability is
    Beta-distributed around TRUE_MEAN with intra-cluster correlation `icc`."""
    if icc > 0:
        ab = 1 / icc - 1
        p = rng.beta(TRUE_MEAN * ab, (1 - TRUE_MEAN) * ab, n_clusters)
    else:
        p = np.full(n_clusters, TRUE_MEAN)
    y = (rng.random((n_clusters, size)) < p[:, None]).astype(float).ravel()
    return y, np.repeat(np.arange(n_clusters), size)


def _coverage(icc: float, size: int, reps: int = 400) -> tuple[float, float, float]:
    rng = np.random.default_rng(7)
    clustered = independent = 0
    deffs = []
    for r in range(reps):
        y, c = _sample(rng, 40, size, icc)
        e = bootstrap_ci(y, clusters=cluster_ids(c), n_boot=1000, seed=r)
        i = bootstrap_ci(y, n_boot=1000, seed=r)
        clustered += e.low <= TRUE_MEAN <= e.high
        independent += i.low <= TRUE_MEAN <= i.high
        deffs.append(e.design_effect)
    return clustered / reps, independent / reps, float(np.nanmean(deffs))


def test_the_clustered_interval_covers_and_the_independent_one_does_not():
    """40 clusters of 5 questions, intra-cluster correlation 0.3: the design effect is about
    1 + (5 - 1) x 0.3 = 2.2, and an interval that resamples questions one by one is too
    narrow by about its square root."""
    clustered, independent, deff = _coverage(icc=0.3, size=5)
    assert 0.92 <= clustered <= 0.97, clustered
    assert independent < 0.87, independent
    assert 1.8 < deff < 3.2


def test_without_correlation_the_two_agree():
    clustered, independent, deff = _coverage(icc=0.0, size=5, reps=200)
    assert abs(clustered - independent) <= 0.03 and 0.92 <= clustered <= 0.98
    assert 0.8 < deff < 1.25


def test_one_question_per_document_is_not_clustered():
    assert cluster_ids(["d1", "d2", "d3"]) is None  # every item its own cluster
    y = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    assert bootstrap_ci(y, clusters=cluster_ids(list("abcdef"))) == bootstrap_ci(y)
    assert list(cluster_ids(["x", "y", "x"])) == [0, 1, 0]


def test_clustered_pairs_use_the_cluster_bootstrap_and_keep_the_discordant_counts():
    rng = np.random.default_rng(3)
    y, c = _sample(rng, 30, 4, 0.3)
    z = np.where(rng.random(len(y)) < 0.2, 1 - y, y)
    plain, clustered = paired_test(y, z), paired_test(y, z, clusters=cluster_ids(c))
    assert plain.test == "McNemar (exact)" and clustered.test == "paired cluster bootstrap"
    assert (clustered.a_only, clustered.b_only) == (plain.a_only, plain.b_only)
    assert clustered.diff == pytest.approx(plain.diff)


def test_p_a_beats_b_over_seeds_and_items():
    rng = np.random.default_rng(5)
    better = (rng.random((3, 300)) < 0.75).astype(float)
    worse = (rng.random((3, 300)) < 0.55).astype(float)
    clear = prob_superior(better, worse)
    assert clear.p > 0.95 and clear.seed_pairs == 9 and clear.low <= clear.p <= clear.high
    same = prob_superior(worse, worse[::-1])  # the same scores in another seed order
    assert 0.3 < same.p < 0.7
    one = prob_superior(better[:1], worse[:1])
    assert one.low != one.low  # nan: one seed each, no interval over seed pairs
    assert prob_superior(worse, better).p == pytest.approx(1 - clear.p, abs=1e-9)
