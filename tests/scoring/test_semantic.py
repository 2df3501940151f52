"""Semantic answer similarity: threshold calibration, pairs, the fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.scoring.semantic import (
    best_threshold,
    calibration_pairs,
    choose_threshold,
    pair_cosines,
    similarities,
)
from harness.types import Example
from tests.scoring.fakes import FakeEmbed, unit


def test_threshold_separates_cleanly_in_the_middle_of_the_gap():
    cut, bal, auc = best_threshold([0.9, 0.8, 0.75], [0.3, 0.5, 0.6])
    assert cut == pytest.approx(0.675)  # between 0.6 and 0.75
    assert bal == 1.0 and auc == 1.0


def test_threshold_on_overlapping_scores():
    # pos 0.9, 0.55; neg 0.6, 0.2. Cut 0.575: tpr 1/2, tnr 1/2 -> 0.5; cut 0.4 (0.2..0.55):
    # tpr 1, tnr 1/2 -> 0.75; cut 0.75 (0.6..0.9): tpr 1/2, tnr 1 -> 0.75. Best: both at 0.75,
    # the middle of those cuts is (0.375 + 0.75) / 2.
    cut, bal, auc = best_threshold([0.9, 0.55], [0.6, 0.2])
    assert bal == pytest.approx(0.75)
    assert cut == pytest.approx((0.375 + 0.75) / 2)
    assert auc == pytest.approx(0.75)  # 3 of the 4 (pos, neg) pairs are ordered right


def test_threshold_needs_both_kinds():
    with pytest.raises(ValueError):
        best_threshold([0.9], [])


def test_calibration_pairs_come_from_outputs_that_name_one_choice():
    exs = [Example("a", "q", ("1987",), ("1987", "1992", "2001")),
           Example("b", "q", ("Oslo",), ("Oslo", "Bergen")),
           Example("c", "q", ("red",), ("red", "blue")),
           Example("d", "q", ("x",))]  # no choices
    outs = ["It was built in 1992.", "Oslo or Bergen", "no idea", "x"]
    pairs = calibration_pairs(exs, outs)
    # only a: names 1992 (a wrong choice): that pair matches, the others do not
    assert pairs == [("It was built in 1992.", "1987", False),
                     ("It was built in 1992.", "1992", True),
                     ("It was built in 1992.", "2001", False)]


def test_choose_threshold_sources():
    pairs = [(0.9, True), (0.8, True), (0.3, False), (0.4, False)]
    calibrated = choose_threshold("auto", pairs, outputs_used=2, min_outputs=2, stored=0.5)
    assert calibrated.source == "calibrated on this run"
    assert calibrated.value == pytest.approx(0.6) and calibrated.auc == 1.0
    assert calibrated.n_matching == 2 and calibrated.n_other == 2
    stored = choose_threshold("auto", pairs, outputs_used=2, min_outputs=20, stored=0.71,
                              stored_note="synthetic + util-linux")
    assert stored.source == "embedder.semantic_threshold" and stored.value == 0.71
    assert "2 outputs name exactly one choice (calibration needs 20)" in stored.detail
    assert "synthetic + util-linux" in stored.detail
    none = choose_threshold("auto", [], outputs_used=0, min_outputs=20, stored=None)
    assert none.value is None and none.source == "none"
    assert "embedder.semantic_threshold" in none.detail
    fixed = choose_threshold(0.8, pairs, outputs_used=2, min_outputs=2, stored=None)
    assert (fixed.value, fixed.source) == (0.8, "scoring.semantic_threshold")
    with pytest.raises(ConfigError, match="semantic_threshold"):
        choose_threshold("high", pairs, 2, 2, None)
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        choose_threshold(1.5, pairs, 2, 2, None)


def test_similarity_is_the_closest_gold():
    embed = FakeEmbed({"the 14th of May": unit(20), "14 May": unit(0), "May 14": unit(60),
                       "June": unit(90)})
    sims = similarities(embed, ["the 14th of May", "June", "", None],
                        [("14 May", "May 14"), ("14 May",), ("14 May",), ("14 May",)])
    assert sims[0] == pytest.approx(np.cos(np.radians(20)), abs=1e-6)
    assert sims[1] == pytest.approx(0.0, abs=1e-6)
    assert sims[2] == 0.0 and sims[3] is None  # empty output: 0; no output: not scored
    pc = pair_cosines(embed, [("the 14th of May", "May 14", True)])
    assert pc[0][0] == pytest.approx(np.cos(np.radians(40)), abs=1e-6) and pc[0][1]
