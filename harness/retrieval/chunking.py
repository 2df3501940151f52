"""Chunking a corpus for retrieval, chosen by config (`chunker=words|sentences|tokens`):

    words      windows of `size` words overlapping by `overlap` words (the default)
    sentences  whole sentences (pysbd) packed up to `size` words; neighbouring chunks share
               their last/first `overlap` sentences; a sentence longer than `size` words is
               a chunk of its own
    tokens     up to `size` tokens of the embedder's own tokenizer, split at the most
               meaningful boundary that fits (semchunk), overlapping by `overlap` tokens

The document's title (if any) leads every chunk so it stays findable. Nothing is dropped:
a long document becomes several chunks.

Fitted to an embedder (`fit_to`: what the dense and hybrid retrievers pass), a chunk longer
than the embedder's window (its max_seq_length, in its own tokens) is split in halves by
words until each part fits, so no text goes unembedded: a 120-word window of code or
tables can run past MiniLM's 256 word pieces, and the encoder would silently cut its tail.
`describe()` counts the chunks split and any still over the window (a single overlong
word), which the run records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.sentences import split_sentences
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


def sentence_packs(text: str, size: int, overlap: int) -> list[str]:
    """Sentences packed up to `size` words; the next pack starts `overlap` sentences back."""
    sents = split_sentences(text)
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
    """Chunks documents by its settings; `tokenizer` (the embedder's) is needed for tokens;
    `fit_to` (an embedder: its `window` and `token_lengths`) splits chunks to its window."""

    def __init__(self, settings: ChunkerSettings, tokenizer: Any = None, fit_to: Any = None) -> None:
        self.settings, self.fit_to = settings, fit_to
        self.stats: dict[str, int] = {}
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
        chunks = [c for d in docs for c in _titled(d, self._split(d.text))]
        if self.fit_to is None:
            return chunks
        titles = {d.id: d.title for d in docs}
        window = int(self.fit_to.window)
        out, split = [], 0
        for c, n in zip(chunks, self.fit_to.token_lengths([c.text for c in chunks])):
            if n <= window:
                out.append(c)
                continue
            split += 1
            out += self._halves(c, titles.get(c.doc_id) or "", window)
        over = sum(n > window for n in self.fit_to.token_lengths([c.text for c in out])) \
            if split else 0
        self.stats = {"embedder_window_tokens": window, "chunks_split_to_fit": split,
                      "chunks_over_window": over}
        return out

    def _halves(self, chunk: Chunk, title: str, window: int) -> list[Chunk]:
        """`chunk` split in halves by words, recursively, until every part fits `window`."""
        prefix = f"{title}: " if title and chunk.text.startswith(f"{title}: ") else ""
        parts, out = [chunk.text[len(prefix):].split()], []
        while parts:
            words = parts.pop(0)
            text = prefix + " ".join(words)
            if len(words) > 1 and self.fit_to.token_lengths([text])[0] > window:
                mid = len(words) // 2
                parts[:0] = [words[:mid], words[mid:]]
            else:
                out.append(text)
        return [Chunk(f"{chunk.id}.{i}", chunk.doc_id, t) for i, t in enumerate(out)]

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"chunker": s.name, "chunk_size": s.size, "chunk_overlap": s.overlap, **self.stats}
