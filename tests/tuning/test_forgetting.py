from __future__ import annotations

import pytest

from harness.models import get_lm
from harness.tuning.forgetting import (
    ControlResult,
    control_prompts,
    forgetting_report,
    perplexity,
    run_control,
)


def test_report_deltas_and_agreement():
    before = ControlResult(10.0, ("Paris is the capital.", "Seven days.", ""))
    after = ControlResult(12.5, ("Paris.", "Seven days.", ""))
    r = forgetting_report(before, after)
    assert r["control_perplexity_delta"] == 2.5
    assert r["control_greedy_agreement"] == pytest.approx(2 / 3)
    assert r["control_greedy_f1"] == pytest.approx((0.5 + 1 + 1) / 3, abs=1e-4)
    assert r["control_prompts"] == 3


def test_control_set_runs_and_is_stable():
    lm = get_lm({"name_or_path": "tiny-random", "device": "cpu"})
    assert len(control_prompts()) == 24
    a, b = run_control(lm), run_control(lm)
    assert a == b and a.perplexity > 1
    # a random 49k-vocabulary model is near-uniform: perplexity in the tens of thousands
    assert perplexity(lm, "the cat sat on the mat") > 1000


def test_the_change_in_perplexity_has_a_block_bootstrap_interval():
    import numpy as np

    from harness.tuning.forgetting import perplexity_change_ci

    rng = np.random.default_rng(0)
    before = rng.gamma(2.0, 1.5, size=600)  # token NLLs of some text
    assert perplexity_change_ci(before, before) == (0.0, 0.0)  # no change: a point
    after = before + 0.1  # every token 0.1 nats worse: perplexity x e^0.1
    low, high = perplexity_change_ci(before, after)
    true = np.exp(after.mean()) - np.exp(before.mean())
    assert 0 < low < true < high  # the change is seen, and inside its interval
    noisy = before + rng.normal(0, 1.0, size=600)  # noise on every token: a wider interval
    wide = perplexity_change_ci(before, noisy)
    assert wide[0] < np.exp(noisy.mean()) - np.exp(before.mean()) < wide[1]
    assert wide[1] - wide[0] > high - low
    assert perplexity_change_ci(before[:40], after[:40]) is None  # too short for 32-token blocks
    r = forgetting_report(ControlResult(10.0, (), tuple(before)), ControlResult(11.0, (), tuple(after)))
    assert r["control_perplexity_delta_low"] < r["control_perplexity_delta_high"]
