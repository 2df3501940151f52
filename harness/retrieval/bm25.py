"""Sparse retrieval: BM25 over the chunks with bm25s, tokenization and stemming as knobs.

`update` rebuilds the index from the new corpus: BM25's document frequencies change with
every document, and building it takes well under a second per ten thousand chunks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from harness.cost.work import METER
from harness.errors import ConfigError
from harness.retrieval.base import Hit
from harness.retrieval.chunking import Chunk, Chunker, ChunkerSettings
from harness.types import Document

METHODS = ("robertson", "lucene", "bm25l", "bm25+", "atire")


class BM25Retriever:
    name = "bm25"

    def __init__(self, services: Any = None, chunker: Chunker | None = None, *,
                 k1: float = 1.5, b: float = 0.75, method: str = "lucene",
                 stopwords: str | list[str] | None = "en", stemmer: str | None = "english",
                 lowercase: bool = True, token_pattern: str = r"(?u)\b\w\w+\b") -> None:
        import Stemmer

        if method not in METHODS:
            raise ConfigError(f"unknown retriever.method '{method}'; choose one of: {', '.join(METHODS)}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"retriever.k1 must be >= 0 and retriever.b in [0, 1], got {k1}, {b}")
        if stemmer not in (None, "none") and stemmer not in Stemmer.algorithms():
            raise ConfigError(f"unknown retriever.stemmer '{stemmer}'; choose none or one of: "
                              f"{', '.join(Stemmer.algorithms())}")
        self.chunker = chunker or Chunker(ChunkerSettings())
        self.k1, self.b, self.method = k1, b, method
        self.stopwords = [] if stopwords in (None, "none") else stopwords
        self.stemmer = None if stemmer in (None, "none") else Stemmer.Stemmer(stemmer)
        self.lowercase, self.token_pattern = lowercase, token_pattern
        self.chunks: list[Chunk] = []
        self.index = None

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(texts), lower=self.lowercase, token_pattern=self.token_pattern,
                              stopwords=self.stopwords, stemmer=self.stemmer, return_ids=False,
                              show_progress=False)

    def _build(self, docs: Sequence[Document]) -> dict[str, Any]:
        import bm25s

        t0 = time.perf_counter()
        self.chunks = self.chunker(docs)
        corpus = self.tokens([c.text for c in self.chunks])
        self.index = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self.index.index(corpus, show_progress=False)
        METER.add({"bm25_tokens": sum(len(t) for t in corpus)})
        seconds = time.perf_counter() - t0
        scores = self.index.scores
        nbytes = int(sum(getattr(scores.get(k), "nbytes", 0) for k in ("data", "indices", "indptr")))
        return {"n_chunks": len(self.chunks), "build_s": seconds, "index_s": seconds,
                "index_bytes": nbytes, "cache_hit": False, "vocabulary": len(self.index.vocab_dict)}

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        return self._build(docs)

    def update(self, docs: Sequence[Document], changed: set[str] | frozenset[str],
               removed: set[str] | frozenset[str] = frozenset(), *,
               progress: bool = False) -> dict[str, Any]:
        before = len(self.chunks)
        info = self._build(docs)
        return {**info, "update_s": info["build_s"], "index_rebuilt": True,
                "reindexed_chunks": info["n_chunks"], "chunks_before": before}

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if self.index is None:
            raise RuntimeError("BM25Retriever.search called before fit")
        k = min(k, len(self.chunks))
        toks = [t or ["\x00"] for t in self.tokens(queries)]  # no token left: every score 0
        ids, scores = self.index.retrieve(toks, k=k, show_progress=False, n_threads=1)
        METER.add({"bm25_queries": len(queries)})
        return [[Hit(self.chunks[int(j)], float(s)) for j, s in zip(row, srow)]
                for row, srow in zip(ids, scores)]
