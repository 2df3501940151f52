"""Does a generated question set give its answers away? The `validity` block of
generation.json (harness-make-task), shown by the report for a task that has one.

- overlap: the share of a question's content words (stop words out) found in the text it
  was made from, and the longest run of words the two share. A cloze question is its
  source sentence with a blank, so lexical search finds it verbatim; real users paraphrase.
- shortcut: a baseline with no model. BM25 (bm25s) finds each question's best-matching
  sentence in the corpus (each sentence a passage, led by its document's title), and the
  choice sharing the most content words with that sentence is picked. A question that
  copies its source sentence finds it, and the answer with it.
  If it solves half the set or more, the set measures lexical matching more than reading
  or knowledge, and the block carries a warning.
- near-duplicates: question pairs whose content-word sets overlap by Jaccard >= 0.8.
- coverage: the share of documents with at least one question, and the largest share of
  the questions any one document has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.scoring.grounded import content_words
from harness.scoring.lexical import words
from harness.types import Document, Example

SHORTCUT_WARN = 0.5
DUPLICATE_JACCARD = 0.8


def longest_shared_run(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of the longest run of words that a and b share (dynamic programming)."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def overlap(question: str, source: str) -> tuple[float, int]:
    """(share of the question's content words in `source`, longest shared word run)."""
    q = content_words(question)
    src = set(content_words(source))
    share = sum(w in src for w in q) / len(q) if q else 0.0
    return share, longest_shared_run(words(question), words(source))


def shortcut_accuracy(examples: Sequence[Example], docs: Sequence[Document]) -> float | None:
    """Accuracy of picking the choice with the most content words in common with BM25's
    top sentence for the question; None for a set without choices."""
    from harness.retrieval.bm25 import BM25Retriever
    from harness.retrieval.chunking import Chunker, ChunkerSettings

    with_choices = [e for e in examples if e.choices]
    if not with_choices or not docs:
        return None
    bm25 = BM25Retriever(chunker=Chunker(ChunkerSettings("sentences", size=1, overlap=0)))
    bm25.fit(list(docs))
    hits = bm25.search([e.question for e in with_choices], 1)
    right = 0
    for e, h in zip(with_choices, hits):
        passage = set(content_words(h[0].chunk.text)) if h else set()
        scores = [sum(w in passage for w in set(content_words(c))) for c in e.choices]
        right += e.choices[int(np.argmax(scores))] == e.answer
    return right / len(with_choices)


def near_duplicates(questions: Sequence[str], threshold: float = DUPLICATE_JACCARD) -> int:
    """Pairs of questions whose content-word sets have Jaccard similarity >= threshold."""
    sets = [frozenset(content_words(q)) for q in questions]
    n = 0
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            if a and b and min(len(a), len(b)) >= threshold * max(len(a), len(b)) \
                    and len(a & b) >= threshold * len(a | b):
                n += 1
    return n


def validity(examples: Sequence[Example], sources: Sequence[tuple[str, str]],
             docs: Sequence[Document]) -> dict[str, Any]:
    """The validity block: `sources[i]` is (examples[i]'s question as generated, without
    a fixed instruction such as "Fill in the blank:", the text it was made from); the
    document's title counts as part of that text."""
    titles = {d.id: d.title or "" for d in docs}
    pairs = [overlap(q, f"{titles.get(e.source_ids[0], '') if e.source_ids else ''} {src}")
             for e, (q, src) in zip(examples, sources)]
    shares = [p[0] for p in pairs]
    runs = [p[1] for p in pairs]
    per_doc = Counter(e.source_ids[0] for e in examples if e.source_ids)
    shortcut = shortcut_accuracy(examples, docs)
    out: dict[str, Any] = {
        "questions": len(examples),
        "overlap_mean": round(float(np.mean(shares)), 4) if shares else None,
        "overlap_share_over_0.8": round(float(np.mean([s > 0.8 for s in shares])), 4)
        if shares else None,
        "longest_shared_run_median": float(np.median(runs)) if runs else None,
        "shortcut_accuracy": None if shortcut is None else round(shortcut, 4),
        "near_duplicate_pairs": near_duplicates([e.question for e in examples]),
        "documents_covered": round(len(per_doc) / len(docs), 4) if docs else None,
        "largest_document_share": round(max(per_doc.values()) / len(examples), 4)
        if per_doc else None,
        "warnings": [],
    }
    if shortcut is not None and shortcut >= SHORTCUT_WARN:
        out["warnings"].append(
            f"a lexical shortcut with no model (the choice sharing most words with BM25's best "
            f"sentence) answers {shortcut:.0%} of the questions: this set rewards word matching "
            "more than reading; paraphrase it (paraphrase=true) or write questions by hand")
    if shares and out["overlap_mean"] > 0.8:
        out["warnings"].append(
            f"questions repeat their source's wording ({out['overlap_mean']:.0%} of their content "
            "words on average): retrieval will look better than on users' own phrasing")
    return out
