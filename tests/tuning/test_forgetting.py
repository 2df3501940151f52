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
