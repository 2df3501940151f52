"""Text that recurs across a corpus's documents (navigation, headers and footers, licence
notices) taken out before anything is indexed or asked about.

A line is boilerplate when it recurs in many documents of the corpus: at least
`min_docs` of them and at least `min_share` of all. "Recurs" is judged on two keys:

- the line itself, case and spacing folded;
- its template: the line with every word that is *not* common in the corpus blanked.
  A navigation bar ("Next: Closures, Previous: Types, Up: Using libffi [Index]") differs
  in its links from page to page, but its common words ("Next", "Previous", "Up",
  "Index") keep their order. Templates are judged only for lines that are not sentences
  (no closing . ! ?) and hold no digits (a line with numbers carries facts: "Weight: 3
  kg" is data, however often its shape recurs), and only when the common words are at
  least `template_share` of the line's words and number at least 3.

Also dropped: sentences inside longer lines that recur verbatim ("All rights
reserved."), with the same thresholds. A document that is boilerplate through and
through is left whole (and counted). Nothing is dropped from a corpus of fewer than
`min_docs` documents. What was dropped is counted (lines, sentences, characters, and a
few examples) for generation.json and the run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.types import Document

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_SENTENCE = re.compile(r"[.!?][\"')\]]*\s*$")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class BoilerplateSettings:
    enabled: bool = True
    min_docs: int = 3  # a line must recur in at least this many documents
    min_share: float = 0.2  # and in at least this share of them
    template_share: float = 0.5  # a template's common words: at least this share of its line
    word_share: float = 0.3  # a word in at least this share of the documents is "common"


def _words(line: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(line)]


def _exact_key(line: str) -> str:
    return " ".join(line.lower().split())


def _lines(doc: Document) -> list[str]:
    return [x for x in doc.text.splitlines() if x.strip()]


def _sentences(line: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(line.strip()) if s]


class _Recurring:
    """Which lines (or sentences) recur across the corpus, by exact key or template."""

    def __init__(self, units: list[list[str]], settings: BoilerplateSettings,
                 templates: bool = True) -> None:
        self.s, self.use_templates = settings, templates
        n = len(units)
        self.need = max(settings.min_docs, settings.min_share * n)
        word_df = Counter(w for doc in units for w in {w for u in doc for w in _words(u)})
        self.common = {w for w, c in word_df.items() if c >= settings.word_share * n}
        exact = Counter(k for doc in units for k in {_exact_key(u) for u in doc})
        tmpl = Counter(k for doc in units for k in {self.template(u) for u in doc} if k)
        self.exact = {k for k, c in exact.items() if c >= self.need}
        self.templates = {k for k, c in tmpl.items() if c >= self.need}

    def template(self, unit: str) -> str | None:
        if not self.use_templates or _SENTENCE.search(unit) or _DIGIT.search(unit):
            return None
        words = _words(unit)
        kept = [w for w in words if w in self.common]
        if len(kept) < 3 or len(kept) < self.s.template_share * len(words):
            return None
        return " ".join(kept)

    def __contains__(self, unit: str) -> bool:
        return _exact_key(unit) in self.exact or self.template(unit) in self.templates


def strip_boilerplate(docs: Sequence[Document], settings: BoilerplateSettings = BoilerplateSettings()
                      ) -> tuple[list[Document], dict[str, Any]]:
    """The documents without their recurring lines and sentences, and what was dropped."""
    counts: dict[str, Any] = {"documents": len(docs), "lines_dropped": 0, "sentences_dropped": 0,
                              "chars_dropped": 0, "documents_all_boilerplate": 0, "examples": []}
    if not settings.enabled or len(docs) < settings.min_docs:
        return list(docs), counts
    lines = [_lines(d) for d in docs]
    by_line = _Recurring(lines, settings)
    sentences = [[s for x in ls if x not in by_line for s in _sentences(x)] for ls in lines]
    by_sentence = _Recurring(sentences, settings, templates=False)
    out, examples = [], Counter()
    for doc in docs:
        kept, lines_gone, sentences_gone = [], [], []
        for x in doc.text.splitlines():  # blank lines stay: they separate paragraphs
            if x.strip() and x in by_line:
                lines_gone.append(x.strip())
                continue
            parts = _sentences(x)
            cut = [p for p in parts if p in by_sentence] if len(parts) > 1 else []
            sentences_gone += cut
            kept.append(" ".join(p for p in parts if p not in cut) if cut else x)
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
        if not text:  # nothing but boilerplate: left whole
            counts["documents_all_boilerplate"] += 1
            out.append(doc)
            continue
        counts["lines_dropped"] += len(lines_gone)
        counts["sentences_dropped"] += len(sentences_gone)
        counts["chars_dropped"] += len(doc.text) - len(text)
        examples.update(g[:80] for g in lines_gone + sentences_gone)
        out.append(replace(doc, text=text) if text != doc.text.strip() else doc)
    counts["examples"] = [x for x, _ in examples.most_common(5)]
    return out, counts
