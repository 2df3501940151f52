"""Groundedness on hand-made passages and answers."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.scoring.grounded import SupportSettings, content_words, groundedness
from tests.scoring.fakes import FakeEmbed, unit

PASSAGE = ("The Varne lighthouse was first lit in 1862. Its keeper, Ada Morrow, logged every "
           "storm in a green ledger.")


def test_one_supported_sentence_one_unsupported():
    answer = "The lighthouse was first lit in 1862. It was painted purple by pirates."
    [g] = groundedness([answer], [[PASSAGE]], FakeEmbed(), SupportSettings())
    # sentence 1 content: lighthouse, lit, 1862 (3 words, all in the passage);
    # sentence 2 content: painted, purple, pirates (3 words, none in it)
    assert content_words("It was painted purple by pirates.") == ["painted", "purple", "pirates"]
    assert g["groundedness"] == pytest.approx(3 / 6)
    assert g["unsupported"] == 0.0
    assert g["groundedness_lexical"] == pytest.approx(0.5)


def test_an_answer_no_passage_supports():
    [g] = groundedness(["Purple pirates painted it."], [[PASSAGE, "Another passage."]],
                       FakeEmbed(), SupportSettings())
    assert g["groundedness"] == 0.0 and g["unsupported"] == 1.0


def test_embedding_support_counts_a_paraphrase():
    answer = "Ada Morrow kept the storm records."  # 'kept', 'records' not in the passage
    embed = FakeEmbed({answer: unit(0), "Its keeper, Ada Morrow, logged every storm in a green "
                                        "ledger.": unit(25)})  # cosine 0.906
    strict = SupportSettings(support_lexical=1.0, support_cosine=0.95)
    loose = SupportSettings(support_lexical=1.0, support_cosine=0.9)
    [g1] = groundedness([answer], [[PASSAGE]], embed, strict)
    [g2] = groundedness([answer], [[PASSAGE]], embed, loose)
    assert g1["groundedness"] == 0.0 and g2["groundedness"] == 1.0
    assert g2["groundedness_embedding"] == pytest.approx(0.906, abs=1e-3)


def test_not_scored_without_output_passages_or_content():
    out = groundedness([None, "1862", "It is the."], [[PASSAGE], [], [PASSAGE]], FakeEmbed(),
                       SupportSettings())
    assert out == [None, None, None]


def test_support_settings_are_checked():
    with pytest.raises(ConfigError, match="support_lexical"):
        SupportSettings(support_lexical=0)
