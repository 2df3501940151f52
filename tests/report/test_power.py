"""The minimum detectable difference against simulation: for a true difference equal to
the stated MDE, the report's own tests detect it in 80% of 2,000 simulated paired sets
(within 3 points); and the report tells a real tie from a set too small to tell."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report.cli import main as report_main
from harness.report.power import items_needed, mcnemar_mde, mcnemar_power, normal_mde
from harness.stats import ALPHA, mcnemar_exact, paired_bootstrap
from tests.report.test_report import _fake_run

SIMS = 2000


def _mcnemar_rate(n: int, psi: float, diff: float, rng) -> float:
    """Share of simulated paired 0/1 sets on which McNemar's exact test rejects."""
    hits = 0
    for _ in range(SIMS):
        kind = rng.choice(3, size=n, p=[(psi + diff) / 2, (psi - diff) / 2, 1 - psi])
        a = (kind == 0).astype(float)  # a-only items: a right, b wrong
        b = (kind == 1).astype(float)
        hits += mcnemar_exact(a, b)[0] < ALPHA
    return hits / SIMS


@pytest.mark.parametrize("n,psi", [(72, 0.3), (200, 0.15)])
def test_mcnemar_mde_is_detected_80_percent_of_the_time(n, psi):
    rng = np.random.default_rng(n)
    mde = mcnemar_mde(n, psi)
    rate = _mcnemar_rate(n, psi, mde, rng)
    print(f"n={n} discordance={psi}: MDE {mde:.3f}, detected in {rate:.3f} of {SIMS}")
    assert abs(rate - 0.80) <= 0.03
    half = _mcnemar_rate(n, psi, mde / 2, rng)  # the check can fail: half the MDE is missed
    assert half < 0.5 and abs(half - mcnemar_power(n, psi, mde / 2)) <= 0.03


def test_bootstrap_mde_is_detected_80_percent_of_the_time():
    """Continuous scores (or several seeds): MDE = 2.8 x the paired bootstrap's SE."""
    rng = np.random.default_rng(1)
    n, sd = 72, 0.3
    mde = normal_mde(sd / np.sqrt(n))
    hits, stated = 0, []
    for i in range(SIMS):
        a = np.clip(rng.normal(0.5 + mde, sd, n), -5, 5)  # per-item score differences vs b = 0.5
        b = np.full(n, 0.5)
        _, _, _, p, se = paired_bootstrap(a, b, n_boot=1000, seed=i)
        hits += p < ALPHA
        stated.append(normal_mde(se))
    rate = hits / SIMS
    print(f"bootstrap: MDE {mde:.3f} (per set {np.median(stated):.3f}), detected in {rate:.3f}")
    assert abs(rate - 0.80) <= 0.03
    assert abs(np.median(stated) - mde) / mde < 0.05  # each set's own estimate is the same


def test_items_needed_inverts_the_power():
    n = items_needed(0.05, 0.3)
    assert 900 < n < 1000  # Connor: (1.96 sqrt(.3) + 0.84 sqrt(.3 - .0025))^2 / .0025
    assert abs(mcnemar_power(n, 0.3, 0.05) - 0.80) < 0.02  # the exact test agrees there


def test_the_report_tells_a_tie_from_a_set_too_small_to_tell(tmp_path):
    # 20 items, 2 discordant: not significant, and this set could only see large differences
    small = tmp_path / "small"
    _fake_run(small, "a", "rag", 0, 3, [1] * 12 + [0] * 8)
    _fake_run(small, "b", "rag", 0, 5, [1] * 10 + [0] * 10)
    assert report_main([str(small)]) == 0
    md = (small / "report.md").read_text()
    assert "no evidence of a difference, which is not a tie" in md
    assert "can only detect differences of about" in md and "Accuracy: a tie" not in md
    assert "no evidence; detects ≥" in md  # the pairs table's verdict
    assert "items (here 20) would detect a 5.0 points difference" in md
    # 2,000 items differing on 18: the CI of the difference sits inside +-0.05, a real tie
    big = tmp_path / "big"
    _fake_run(big, "a", "rag", 0, 3, [1] * 1000 + [1] * 10 + [0] * 8 + [0] * 982)
    _fake_run(big, "b", "rag", 0, 5, [1] * 1000 + [0] * 10 + [1] * 8 + [0] * 982)
    assert report_main([str(big)]) == 0
    md = (big / "report.md").read_text()
    assert "**Accuracy: a tie.**" in md and "no evidence of a difference" not in md
    assert "equivalent (within ±0.05)" in md
