"""Sentence splitting in time linear in the text: pysbd (rule-based, right about
abbreviations and decimals) only ever sees bounded pieces.

pysbd's abbreviation pass runs a regular-expression substitution over the whole block for
every candidate, so a long block without sentence punctuation (a table dump, a log,
minified code) takes quadratic time or worse: 50,000 words took 203 s. Here text is split
at paragraph breaks first, and a paragraph longer than MAX_CHARS is cut before pysbd sees
it: after the last plain sentence end in its first MAX_CHARS characters, else at the last
space, else hard. The cuts are counted (`Splitter.cut`), never silent.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_CHARS = 2000  # pysbd takes ~10 ms on a block this long; the cost per block is bounded
_PARAGRAPHS = re.compile(r"\n\s*\n")
# a sentence end safe to cut at: a word of 3+ lower-case letters (4+ when capitalised), its
# mark, then a capital (not "Dr. Smith", "Mrs. Jones", "e.g. The", "3 p.m. On")
_SENTENCE_END = re.compile(r"\b(?:[a-z]{3,}|[A-Z][a-z]{3,})[.!?][\"')\]]*\s+(?=[A-Z])")


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


_MARK = re.compile(r"[.!?]")


def _sentences_of(piece: str) -> list[str]:
    """One piece through the segmenter; a piece without a sentence mark is one sentence
    (the segmenter would say so, slowly)."""
    return _segmenter().segment(piece) if _MARK.search(piece) else [piece]


def pieces(block: str, max_chars: int = MAX_CHARS) -> list[str]:
    """`block` cut into pieces of at most `max_chars` characters, each cut at a sentence end
    or a space where one falls in the second half of the window."""
    out, start = [], 0
    while len(block) - start > max_chars:
        window = block[start:start + max_chars]
        ends = [m.end() for m in _SENTENCE_END.finditer(window)]
        cut = ends[-1] if ends and ends[-1] > max_chars // 2 else window.rfind(" ") + 1
        if cut <= max_chars // 2:
            cut = max_chars  # no break in sight: cut hard
        out.append(block[start:start + cut])
        start += cut
    out.append(block[start:])
    return [p for p in out if p.strip()]


class Splitter:
    """Splits text into sentences; `cut` counts the paragraphs it had to cut first."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars, self.cut = max_chars, 0

    def block(self, block: str) -> list[str]:
        """The sentences of one paragraph (cut first when it is long)."""
        parts = pieces(block, self.max_chars)
        self.cut += len(parts) > 1
        return [s.strip() for part in parts for s in _sentences_of(part) if s.strip()]

    def split(self, text: str) -> list[str]:
        """The sentences of every paragraph of `text` (a sentence never spans two)."""
        return [s for block in _PARAGRAPHS.split(text) if block.strip() for s in self.block(block)]


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (paragraphs split first, long ones cut: see the module)."""
    return Splitter().split(text)
