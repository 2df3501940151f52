"""The free-form scorer of a run, with the real embedder (MiniLM, bundled) on hand-made
answers, and wired through the runner on the tiny model."""

from __future__ import annotations

import json

import pytest

from harness.retrieval import get_embedder
from harness.run.runner import run
from harness.scoring import score_item
from harness.scoring.free_form import FreeFormScorer, ScoringSettings
from harness.types import Citation, Example, Prediction
from tests.conftest import compose_cfg
from tests.scoring.test_judge import RUBRIC, StubLM

CITIES = ["Oslo", "Bergen", "Lisbon", "Porto", "Dublin", "Cork", "Vienna", "Graz"]


def _items(n: int = 32):
    """n questions with 4 city choices; the answer names the gold city in 3 of 4 items and
    a wrong one in the rest; every answer cites a passage that states the gold city."""
    examples, preds = [], []
    for i in range(n):
        gold, wrong = CITIES[i % 8], CITIES[(i + 3) % 8]
        choices = tuple(sorted({gold, wrong, CITIES[(i + 5) % 8], CITIES[(i + 6) % 8]}))
        ex = Example(f"q{i}", f"Where is company {i} based?", (gold,), choices, (f"d{i}",))
        said = gold if i % 4 else wrong
        passage = f"Company {i} has its head office in {gold}, where it was founded."
        preds.append(Prediction(ex.id, f"Company {i} is based in {said}.",
                                citations=(Citation(f"d{i}", 0.9, passage),)))
        examples.append(ex)
    return examples, preds


@pytest.fixture(scope="module")
def embed():
    cfg = compose_cfg([]).embedder
    from omegaconf import OmegaConf

    return get_embedder(OmegaConf.to_container(cfg, resolve=True)).embed


def test_scorer_calibrates_on_the_run_and_grounds_answers(embed):
    examples, preds = _items()
    items = [score_item(e, p, 3, True) for e, p in zip(examples, preds)]
    scorer = FreeFormScorer(ScoringSettings(), embed, judge_lm=StubLM(
        {p.output: ([-0.1, -5.0, -5.0] if i % 4 else [-5.0, -5.0, -0.1])
         for i, p in enumerate(preds)}), rubric=RUBRIC)
    metrics, details = scorer.score(examples, preds, items, cites=True, doc_text={})
    cal = metrics["semantic_calibration"]
    assert cal["source"] == "calibrated on this run" and cal["outputs_used"] == 32
    assert cal["n_matching"] == 32 and cal["n_other"] == 96
    assert cal["auc"] > 0.9  # naming the city moves the cosine
    named_gold = [float(i % 4 != 0) for i in range(32)]
    called = [it["semantic_correct"] for it in items]
    assert sum(a == b for a, b in zip(called, named_gold)) >= 28
    # groundedness: the 'wrong city' answers say something the passage does not
    grounded = [it["groundedness"] for it in items]
    assert all(g == 1.0 for g, ok in zip(grounded, named_gold) if ok)
    assert all(it["unsupported"] == 0.0 for it in items)  # 'Company i based' is in the passage
    assert [it["judge_correct"] for it in items] == named_gold
    assert details[0]["judge_grade"] == "wrong" and details[1]["judge_grade"] == "correct"
    assert set(metrics["eval_s"]) == {"semantic", "groundedness", "judge"}
    assert metrics["judge"]["grades"] == {"correct": 24, "partly": 0, "wrong": 8}


def test_a_strategy_that_cannot_cite_gets_no_groundedness(embed):
    examples, preds = _items(8)
    items = [score_item(e, p) for e, p in zip(examples, preds)]
    metrics, _ = FreeFormScorer(ScoringSettings(min_calibration_outputs=50), embed,
                                stored_threshold=0.5, stored_note="test").score(
        examples, preds, items, cites=False, doc_text={})
    assert all(it["groundedness"] is None and it["unsupported"] is None for it in items)
    assert metrics["semantic_calibration"]["source"] == "embedder.semantic_threshold"
    assert metrics["semantic_threshold"] == 0.5 and "judge" not in metrics


def test_runner_records_free_form_scores_on_a_task_without_choices(tmp_path):
    cfg = compose_cfg(["model=tiny-random", "task.n_entities=30", "task.n_choices=0",
                       "strategy=rag", "judge=tiny-random", "embedder.semantic_threshold=0.75",
                       "limit=10"], tmp_path)
    m = run(cfg, tmp_path / "run")
    assert m["choice_accuracy"] is None and m["primary_metric"] == "contains"
    assert m["semantic_threshold"] == 0.75
    assert m["semantic_calibration"]["source"] == "embedder.semantic_threshold"
    assert m["judge"]["model"] == "tiny-random" and m["judge"]["rubric_version"] == "1"
    assert m["judge_correct"] is not None and "judge" in m["eval_s"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").open()]
    assert all(r["choices"] == [] for r in rows)
    for key in ("semantic_similarity", "semantic_correct", "judge_correct", "groundedness",
                "unsupported"):
        assert key in rows[0]["scores"]
    assert rows[0]["judge_grade"] in ("correct", "partly", "wrong")
    assert rows[0]["citations"][0]["text"]  # the cited passage's text is kept
