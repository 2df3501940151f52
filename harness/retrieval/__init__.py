"""Retrieval: chunkers, the embedder, dense (FAISS), BM25 and hybrid retrievers, reranking,
all behind one contract (harness.retrieval.base.Retriever) and built from config by
`make_retriever` (`retriever=dense|bm25|hybrid`, `chunker=words|sentences|tokens`); and the
index of a corpus that strategies compose (harness.retrieval.index.RetrievalIndex)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import ConfigError
from harness.retrieval.base import Hit, Retriever, Services
from harness.retrieval.bm25 import BM25Retriever
from harness.retrieval.chunking import Chunk, Chunker, ChunkerSettings, chunk_documents
from harness.retrieval.dense import INDEX_TYPES, DenseRetriever, build_index, fits
from harness.retrieval.embedder import Embedder, get_embedder
from harness.retrieval.fusion import HybridRetriever
from harness.retrieval.index import RetrievalIndex, Retrieved, cite, describe
from harness.retrieval.rerank import Reranked, make_scorer

__all__ = ["BM25Retriever", "Chunk", "Chunker", "ChunkerSettings", "DenseRetriever", "Embedder",
           "Hit", "HybridRetriever", "INDEX_TYPES", "RetrievalIndex", "Retrieved", "Retriever",
           "Services", "build_index", "chunk_documents", "cite", "describe", "get_embedder",
           "make_retriever"]

RERANK_KEYS = ("rerank", "rerank_model", "rerank_candidates", "rerank_batch_size")


def make_chunker(cfg: Mapping[str, Any], services: Services, embeds: bool = False) -> Chunker:
    """The chunker of a run's config; fitted to the embedder's window when the retriever
    embeds the chunks (`embeds`)."""
    settings = ChunkerSettings(**{k: v for k, v in cfg.items() if k in ("name", "size", "overlap")})
    embedder = services.get_embedder() if settings.name == "tokens" or embeds else None
    return Chunker(settings, embedder.tokenizer if settings.name == "tokens" else None,
                   fit_to=fits(embedder) if embeds else None)


def make_retriever(retriever_cfg: Mapping[str, Any], chunker_cfg: Mapping[str, Any],
                   services: Services) -> Retriever:
    """The retriever of a run's config: `_target_` built as Cls(services, chunker, **knobs),
    wrapped in a reranker when `rerank` is set."""
    from hydra.utils import get_class

    cfg = dict(retriever_cfg)
    target = cfg.pop("_target_", None)
    cfg.pop("name", None)
    rerank = {k: cfg.pop(k) for k in RERANK_KEYS if k in cfg}
    if not target:
        raise ConfigError("the retriever config has no _target_ (conf/retriever/<name>.yaml)")
    try:
        cls = get_class(target)
    except Exception as e:  # hydra wraps import errors
        raise ConfigError(f"retriever._target_ '{target}' cannot be imported: {e}") from None
    try:
        retriever = cls(services, make_chunker(chunker_cfg, services,
                                               embeds=getattr(cls, "embeds", False)), **cfg)
    except TypeError as e:
        if "keyword argument" not in str(e):
            raise
        raise ConfigError(f"retriever ({target}): {e}") from None
    if rerank.get("rerank"):
        scorer = make_scorer(rerank["rerank"], rerank.get("rerank_model"), services,
                             int(rerank.get("rerank_batch_size") or 16))
        retriever = Reranked(retriever, scorer, rerank["rerank"],
                             int(rerank.get("rerank_candidates") or 20))
    return retriever
