"""Text that recurs across a corpus's documents (navigation, headers and footers, licence
notices) taken out before anything is indexed or asked about.

A line is boilerplate when it recurs in many documents of the corpus: at least
`min_docs` of them and at least `min_share` of all. "Recurs" is judged on two keys:

- the line itself, case and spacing folded;
- at a document's edges (its first and last 2 lines, where headers, navigation and
  footers live), its template: its labels ("Next:", "Up:", "[Index]") when it has two or
  more, else its words that are common in the corpus. A navigation bar ("Next: Closures,
  Previous: Types, Up: Using libffi [Index]") differs in its links from page to page, but
  its labels keep their order. Templates are judged only for lines that are not sentences
  (no closing . ! ?) and hold no digits (a line with numbers carries facts: "Weight: 3
  kg" is data, however often its shape recurs), and only when the common words are at
  least `template_share` of the line's words and number at least 3.

Lines and sentences of fewer than 3 words are never dropped: recurring ones are fragments
(a sentence wrapped after "The", a closing brace), whose removal would cut the text; nor
is a line whose sentence goes on, in lower case, on the next line.
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
MIN_WORDS = 3  # shorter lines and sentences are never boilerplate
EDGE = 2  # templates are looked for in a document's first and last 2 lines
# a label: a capitalised word before a colon at the start or after a separator, or a
# bracketed word ("Next: Closures, Up: Types [Index]")
_LABEL = re.compile(r"(?:^|[,|•·»«/]\s*)([A-Z][A-Za-z]{1,15})\s*:|\[\s*([A-Za-z][A-Za-z ]{0,20}?)\s*\]")


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


def _continues(line: str, following: str) -> bool:
    """Is `line` the start of a sentence wrapped onto the next line (no closing mark, and
    the next line goes on in lower case)? Then it is part of that text, not a notice."""
    nxt = following.lstrip()
    return (not re.search(r"[.!?:;)\]|>]\s*$", line)) and bool(nxt) and (nxt[0].islower() or nxt[0] in "-(")


def _sentences(line: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(line.strip()) if s]


def _marked(raw: list[str], edges: set[str], by_line: _Recurring) -> list[tuple[str, bool]]:
    """Each line with whether it goes: it recurs, and its sentence does not go on below."""
    return [(x, bool(x.strip()) and by_line.has(x, x in edges)
             and not _continues(x, raw[i + 1] if i + 1 < len(raw) else ""))
            for i, x in enumerate(raw)]


def _edges(units: list[str]) -> list[str]:
    """Where headers, navigation and footers live: the first and last EDGE lines."""
    return units[:EDGE] + units[-EDGE:]


class _Recurring:
    """Which lines (or sentences) recur across the corpus: verbatim anywhere, or, at a
    document's edges, as a template."""

    def __init__(self, units: list[list[str]], settings: BoilerplateSettings,
                 templates: bool = True) -> None:
        self.s, self.use_templates = settings, templates
        n = len(units)
        self.need = max(settings.min_docs, settings.min_share * n)
        word_df = Counter(w for doc in units for w in {w for u in doc for w in _words(u)})
        self.common = {w for w, c in word_df.items() if c >= settings.word_share * n}
        exact = Counter(k for doc in units for k in {_exact_key(u) for u in doc})
        tmpl = Counter(k for doc in units for k in {self.template(u) for u in _edges(doc)} if k)
        self.exact = {k for k, c in exact.items() if c >= self.need}
        self.templates = {k for k, c in tmpl.items() if c >= self.need}

    def template(self, unit: str) -> str | None:
        """The line's fixed part: its labels ("Next:", "Up:", "[Index]") when it has two or
        more, else its common words; None for a sentence, a line with digits, or a line
        whose fixed part is too small a share of it."""
        if not self.use_templates or _SENTENCE.search(unit) or _DIGIT.search(unit):
            return None
        labels = _LABEL.findall(unit)
        if len(labels) >= 2:
            return "labels: " + " ".join(a or b for a, b in labels).lower()
        words = _words(unit)
        kept = [w for w in words if w in self.common]
        if len(kept) < 3 or len(kept) < self.s.template_share * len(words):
            return None
        return " ".join(kept)

    def has(self, unit: str, edge: bool) -> bool:
        # a line of one or two words is a fragment (a sentence wrapped after "The", a
        # closing brace), not a notice; dropping it would cut the text it belongs to
        if len(_words(unit)) < MIN_WORDS:
            return False
        return _exact_key(unit) in self.exact or (edge and self.template(unit) in self.templates)


def strip_boilerplate(docs: Sequence[Document], settings: BoilerplateSettings = BoilerplateSettings()
                      ) -> tuple[list[Document], dict[str, Any]]:
    """The documents without their recurring lines and sentences, and what was dropped."""
    counts: dict[str, Any] = {"documents": len(docs), "lines_dropped": 0, "sentences_dropped": 0,
                              "chars_dropped": 0, "documents_all_boilerplate": 0, "examples": []}
    if not settings.enabled or len(docs) < settings.min_docs:
        return list(docs), counts
    lines = [_lines(d) for d in docs]
    by_line = _Recurring(lines, settings)
    # per document, each of its lines (blank ones too) and whether it goes as boilerplate
    marked = [_marked(d.text.splitlines(), set(_edges(ls)), by_line) for d, ls in zip(docs, lines)]
    by_sentence = _Recurring([[s for x, gone in m if x.strip() and not gone for s in _sentences(x)]
                              for m in marked], settings, templates=False)
    out, examples = [], Counter()
    for doc, m in zip(docs, marked):
        kept, lines_gone, sentences_gone = [], [], []
        for x, gone in m:  # blank lines stay: they separate paragraphs
            if gone:
                lines_gone.append(x.strip())
                continue
            parts = _sentences(x)
            cut = [p for p in parts if by_sentence.has(p, False)] if len(parts) > 1 else []
            sentences_gone += cut
            gone = set(cut)  # a long line has many sentences: look them up, not scan a list
            kept.append(" ".join(p for p in parts if p not in gone) if cut else x)
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
