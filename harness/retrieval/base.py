"""The retriever contract, shared by `rag`, `hybrid` and `retrieval_only`.

A retriever is chosen by config (`retriever=dense|bm25|hybrid`, conf/retriever/): its YAML
names the class (`_target_`) and its knobs; the class is built as
``Cls(services, chunker, **knobs)`` and must have the members of `Retriever` below. Adding
a retriever means one file and one YAML. Reranking (`retriever.rerank`) wraps any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.retrieval.chunking import Chunk
from harness.types import Document


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # higher is better; its scale depends on the retriever (cosine, BM25, fused)


@dataclass(frozen=True)
class Services:
    """What a retriever may use from the run."""

    get_embedder: Callable[[], Any]  # the run's embedder, built on first call, shared
    lm: Any = None  # the run's model (the `lm` reranker scores with it)
    progress: bool = False


class Retriever(Protocol):
    name: str  # dense, bm25, hybrid, ...: how the report labels the variant
    chunks: list[Chunk]  # what fit indexed (the hybrid strategy draws RAFT passages from it)

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        """Index the corpus; returns at least n_chunks, build_s (seconds the index took when
        computed, also on a cache hit), index_bytes and cache_hit."""

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top `k` chunks per query, best first."""

    def update(self, docs: Sequence[Document], changed: set[str] | frozenset[str],
               removed: set[str] | frozenset[str] = frozenset(), *,
               progress: bool = False) -> dict[str, Any]:
        """Re-index the `changed` documents of the new corpus `docs` and drop `removed`;
        returns at least update_s and n_chunks."""
