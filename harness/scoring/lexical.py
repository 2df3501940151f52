"""Lexical answer match: SQuAD exact match, token F1 and containment."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

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
