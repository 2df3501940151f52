"""Groundedness of a citing strategy's answers: how much of each answer its cited passages
support.

An answer is split into sentences (pysbd); a sentence's content is its words less English
stop words (scikit-learn's list). A sentence is supported by a cited passage when

    lexical support   >= scoring.support_lexical: the share of its content words that occur
                         in the passage (best passage), or
    embedding support >= scoring.support_cosine: its cosine with the passage's closest
                         sentence (best passage), with the run's embedder.

groundedness = the share of the answer's content words that sit in supported sentences;
unsupported  = 1 when no sentence of the answer is supported by any cited passage.
An answer without content words (empty, or stop words only) asserts nothing and is not
scored. A strategy that cannot cite gets no groundedness at all ("cannot cite").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.errors import ConfigError
from harness.scoring.lexical import words
from harness.sentences import split_sentences

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class SupportSettings:
    support_lexical: float = 0.5  # share of a sentence's content words found in a passage
    support_cosine: float = 0.7  # cosine of a sentence with a passage's closest sentence

    def __post_init__(self) -> None:
        if not 0 < self.support_lexical <= 1:
            raise ConfigError(f"scoring.support_lexical must be in (0, 1], got {self.support_lexical}")
        if not -1 <= self.support_cosine <= 1:
            raise ConfigError(f"scoring.support_cosine must be in [-1, 1], got {self.support_cosine}")


def sentences(text: str) -> list[str]:
    return split_sentences(text)


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (imported when first needed: sklearn takes a second
    to import, which every run's start-up would pay)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def content_words(text: str) -> list[str]:
    stop = _stop_words()
    return [w for w in words(text) if w not in stop]


def groundedness(outputs: Sequence[str | None], passages: Sequence[Sequence[str]], embed: Embed,
                 settings: SupportSettings) -> list[dict[str, float] | None]:
    """Per item: groundedness, unsupported (0/1), and the two support measures averaged
    over the answer's content (groundedness_lexical, groundedness_embedding); None for an
    item without an output, without cited passages or without content words."""
    answer_sents: list[list[str]] = []
    for out, ps in zip(outputs, passages):
        sents = [s for s in sentences(out) if content_words(s)] if out and ps else []
        answer_sents.append(sents)
    passage_sents = {p: sentences(p) or [p] for ps in passages for p in ps}
    texts = list(dict.fromkeys([s for ss in answer_sents for s in ss] +
                               [s for ss in passage_sents.values() for s in ss]))
    vec = dict(zip(texts, embed(texts))) if texts else {}
    passage_words = {p: set(words(p)) for p in passage_sents}
    passage_mat = {p: np.stack([vec[s] for s in ss]) for p, ss in passage_sents.items()} if texts else {}
    results: list[dict[str, float] | None] = []
    for sents, ps in zip(answer_sents, passages):
        if not sents:
            results.append(None)
            continue
        weights, lexical, cosine = [], [], []
        for s in sents:
            cw = set(content_words(s))
            weights.append(len(content_words(s)))
            lexical.append(max(len(cw & passage_words[p]) / len(cw) for p in ps))
            cosine.append(max(float((passage_mat[p] @ vec[s]).max()) for p in ps))
        w = np.asarray(weights, float)
        lex, cos = np.asarray(lexical), np.asarray(cosine)
        supported = (lex >= settings.support_lexical) | (cos >= settings.support_cosine)
        results.append({
            "groundedness": float((w * supported).sum() / w.sum()),
            "unsupported": float(not supported.any()),
            "groundedness_lexical": float((w * lex).sum() / w.sum()),
            "groundedness_embedding": float((w * cos).sum() / w.sum()),
        })
    return results
