"""Per-item scores of one prediction and their means over a run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.scoring.lexical import contains, exact_match, token_f1
from harness.types import Example, Prediction


def score_item(ex: Example, pred: Prediction, k: int | None = None,
               cites: bool = False) -> dict[str, float | None]:
    """Scores for one test item; None where a score does not apply (attribution: only for
    a strategy that cites, `k` the depth of recall@k and hit@k; nDCG@10 over the first 10
    cited documents, relevance 1 for a gold source)."""
    s: dict[str, float | None] = {
        "choice_correct": None, "exact_match": None, "f1": None, "contains": None,
        "recall_at_k": None, "hit_at_k": None, "mrr": None, "ndcg_at_10": None,
        "citation_precision": None, "citation_recall": None,
    }
    if ex.choices and pred.choice is not None:
        s["choice_correct"] = float(ex.choices[pred.choice] in ex.answers)
    if pred.output is not None:
        s["exact_match"] = exact_match(pred.output, ex.answers)
        s["f1"] = token_f1(pred.output, ex.answers)
        s["contains"] = contains(pred.output, ex.answers)
    if cites and ex.source_ids:
        gold = set(ex.source_ids)
        ranked = list(dict.fromkeys(c.source_id for c in pred.citations))
        top = ranked[:k] if k else ranked
        s["recall_at_k"] = len(gold & set(top)) / len(gold)
        s["hit_at_k"] = float(bool(gold & set(top)))
        s["mrr"] = next((1.0 / r for r, d in enumerate(ranked, 1) if d in gold), 0.0)
        dcg = sum(1 / math.log2(r + 1) for r, d in enumerate(ranked[:10], 1) if d in gold)
        ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(gold), 10) + 1))
        s["ndcg_at_10"] = dcg / ideal
        s["citation_precision"] = len(gold & set(ranked)) / len(ranked) if ranked else 0.0
        s["citation_recall"] = len(gold & set(ranked)) / len(gold)
    return s


def aggregate(item_scores: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each score over the items where it applies (None if it applies to none)."""
    keys = item_scores[0].keys() if item_scores else []
    out: dict[str, float | None] = {}
    for key in keys:
        vals = [s[key] for s in item_scores if s[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out
