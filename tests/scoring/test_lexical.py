from __future__ import annotations

import pytest

from harness.scoring import aggregate, contains, exact_match, normalize, score_item, token_f1
from harness.types import Citation, Example, Prediction

EX = Example(id="q", question="?", answers=("The Copper Bridge", "Copper Bridge"),
             choices=("Iron Gate", "The Copper Bridge"), source_ids=("d1",))


def test_normalize_drops_case_punctuation_articles():
    assert normalize("  The  Copper-Bridge! ") == "copperbridge"
    assert normalize("An apple, a day") == "apple day"


def test_answer_matches():
    assert exact_match("the copper bridge.", EX.answers) == 1.0
    assert exact_match("copper bridge tower", EX.answers) == 0.0
    assert contains("It is the Copper Bridge, surely", EX.answers) == 1.0
    assert contains("Copperbridges", EX.answers) == 0.0
    assert token_f1("copper tower", ["copper bridge"]) == pytest.approx(0.5)
    assert token_f1("", ["x"]) == 0.0


def test_score_item_choices_and_citations():
    pred = Prediction("q", output="Copper Bridge", choice=1,
                      citations=(Citation("d7", 0.9), Citation("d1", 0.8), Citation("d3", 0.1)))
    s = score_item(EX, pred, k=3, cites=True)
    assert s["choice_correct"] == 1.0 and s["exact_match"] == 1.0
    assert s["recall_at_k"] == 1.0 and s["mrr"] == 0.5
    assert s["citation_precision"] == pytest.approx(1 / 3) and s["citation_recall"] == 1.0
    assert score_item(EX, pred, k=1, cites=True)["recall_at_k"] == 0.0
    assert score_item(EX, pred, k=3)["recall_at_k"] is None  # a strategy that does not cite


def test_strategies_that_cannot_cite_get_no_attribution_numbers():
    s = score_item(EX, Prediction("q", output=None, choice=0))
    assert s["choice_correct"] == 0.0 and s["exact_match"] is None
    assert s["recall_at_k"] is None and s["citation_precision"] is None


def test_aggregate_skips_missing():
    agg = aggregate([{"a": 1.0, "b": None}, {"a": 0.0, "b": None}])
    assert agg == {"a": 0.5, "b": None}


@pytest.mark.parametrize("output,gold,found", [
    ("The function os.path.getsize returns the size of a file", "getsize", 1.0),  # dotted
    ("Use os.path.getsize here.", "os.path.getsize", 1.0),
    ("call shutil.copy_file_range() instead", "copy_file_range", 1.0),  # underscored
    ("it is a well-known tool", "well-known", 1.0),  # hyphenated
    ("it is a well-known tool", "known", 1.0),
    ('The answer is "Ada Morrow", surely', "Ada Morrow", 1.0),  # quoted
    ("it returns getsizeof", "getsize", 0.0),  # a longer word is not the answer
    ("path and size", "os.path.getsize", 0.0),  # all of the answer's words, in order
])
def test_contains_and_f1_split_on_punctuation(output, gold, found):
    assert contains(output, [gold]) == found
    if found:
        assert token_f1(output, [gold]) > 0
    assert exact_match(gold + ".", [gold]) == 1.0  # SQuAD exact match: punctuation deleted
    assert token_f1("os.path.getsize", ["getsize"]) == pytest.approx(0.5)  # 1 of 3 words
