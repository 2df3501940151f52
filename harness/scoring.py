"""Per-item scores and their means: answer match, choice accuracy, retrieval, citations."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from harness.types import Example, Prediction

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """SQuAD's normalization: lowercase, delete punctuation and English articles, collapse
    whitespace. Used by exact match only, so that it stays comparable with SQuAD's."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def words(text: str) -> list[str]:
    """Lowercased words with punctuation turned into spaces and English articles dropped:
    'os.path.getsize' -> [os, path, getsize], 'well-known' -> [well, known]. Token F1 and
    contains use these, so a dotted, underscored, hyphenated or quoted answer still matches."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT_TO_SPACE)).split()


def exact_match(pred: str, golds: Sequence[str]) -> float:
    """SQuAD exact match (SQuAD normalization)."""
    return float(any(normalize(pred) == normalize(g) for g in golds))


def token_f1(pred: str, golds: Sequence[str]) -> float:
    best = 0.0
    p_toks = words(pred)
    for g in golds:
        g_toks = words(g)
        common = sum((Counter(p_toks) & Counter(g_toks)).values())
        if common:
            prec, rec = common / len(p_toks), common / len(g_toks)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best


def contains(pred: str, golds: Sequence[str]) -> float:
    """1 if the words of a gold answer occur in the output's words, in order and adjacent."""
    p = words(pred)
    for g in golds:
        w = words(g)
        if w and any(p[i:i + len(w)] == w for i in range(len(p) - len(w) + 1)):
            return 1.0
    return 0.0


def score_item(ex: Example, pred: Prediction, k: int | None = None,
               cites: bool = False) -> dict[str, float | None]:
    """Scores for one test item; None where a score does not apply (attribution: only for
    a strategy that cites, `k` the depth of recall@k)."""
    s: dict[str, float | None] = {
        "choice_correct": None, "exact_match": None, "f1": None, "contains": None,
        "recall_at_k": None, "mrr": None, "citation_precision": None, "citation_recall": None,
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
        s["mrr"] = next((1.0 / r for r, d in enumerate(ranked, 1) if d in gold), 0.0)
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
