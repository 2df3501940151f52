"""Chunking a corpus for retrieval, chosen by config (`chunker=words|sentences|tokens`):

    words      windows of `size` words overlapping by `overlap` words (the default)
    sentences  whole sentences (pysbd) packed up to `size` words; neighbouring chunks share
               their last/first `overlap` sentences; a sentence longer than `size` words is
               a chunk of its own
    tokens     up to `size` tokens of the embedder's own tokenizer, split at the most
               meaningful boundary that fits (semchunk), overlapping by `overlap` tokens

The document's title (if any) leads every chunk so it stays findable. Nothing is dropped:
a long document becomes several chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from harness.errors import ConfigError
from harness.types import Document

CHUNKERS = ("words", "sentences", "tokens")


@dataclass(frozen=True)
class Chunk:
    id: str  # "<doc id>#<n>"
    doc_id: str
    text: str


@dataclass(frozen=True)
class ChunkerSettings:
    name: str = "words"  # words | sentences | tokens
    size: int = 120  # words (words, sentences) or tokens (tokens) per chunk
    overlap: int = 20  # words, sentences or tokens shared by neighbouring chunks

    def __post_init__(self) -> None:
        if self.name not in CHUNKERS:
            raise ConfigError(f"unknown chunker '{self.name}'; choose one of: {', '.join(CHUNKERS)}")
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise ConfigError(f"chunker needs size >= 1 and 0 <= overlap < size, got "
                              f"size={self.size}, overlap={self.overlap}")


def _titled(doc: Document, bodies: Sequence[str]) -> list[Chunk]:
    out = []
    for n, body in enumerate(b for b in bodies if b.strip()):
        text = f"{doc.title}: {body}" if doc.title and not body.startswith(doc.title) else body
        out.append(Chunk(id=f"{doc.id}#{n}", doc_id=doc.id, text=text))
    return out or [Chunk(id=f"{doc.id}#0", doc_id=doc.id, text=doc.title or "")]


def word_windows(text: str, size: int, overlap: int) -> list[str]:
    words = text.split()
    step = size - overlap
    return [" ".join(words[s:s + size]) for s in range(0, max(len(words) - overlap, 1), step)]


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def sentence_packs(text: str, size: int, overlap: int) -> list[str]:
    """Sentences packed up to `size` words; the next pack starts `overlap` sentences back."""
    sents = [s.strip() for s in _segmenter().segment(text) if s.strip()]
    packs, start = [], 0
    while start < len(sents):
        end, words = start, 0
        while end < len(sents) and (end == start or words + len(sents[end].split()) <= size):
            words += len(sents[end].split())
            end += 1
        packs.append(" ".join(sents[start:end]))
        if end >= len(sents):
            break
        start = max(end - overlap, start + 1)
    return packs


def chunk_documents(docs: Sequence[Document], chunk_words: int = 120,
                    overlap_words: int = 20) -> list[Chunk]:
    """Word windows (the `words` chunker)."""
    s = ChunkerSettings("words", chunk_words, overlap_words)
    return [c for d in docs for c in _titled(d, word_windows(d.text, s.size, s.overlap))]


class Chunker:
    """Chunks documents by its settings; `tokenizer` (the embedder's) is needed for tokens."""

    def __init__(self, settings: ChunkerSettings, tokenizer: Any = None) -> None:
        self.settings = settings
        self._split: Callable[[str], list[str]]
        size, overlap = settings.size, settings.overlap
        if settings.name == "words":
            self._split = lambda t: word_windows(t, size, overlap)
        elif settings.name == "sentences":
            self._split = lambda t: sentence_packs(t, size, overlap)
        else:
            if tokenizer is None:
                raise ConfigError("chunker=tokens needs the embedder's tokenizer")
            import semchunk

            chunk = semchunk.chunkerify(tokenizer, size)
            self._split = lambda t: chunk(t, overlap=overlap or None) if t.strip() else []

    def __call__(self, docs: Sequence[Document]) -> list[Chunk]:
        return [c for d in docs for c in _titled(d, self._split(d.text))]

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"chunker": s.name, "chunk_size": s.size, "chunk_overlap": s.overlap}
