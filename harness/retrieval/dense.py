"""Dense retrieval: chunks embedded once with the run's embedder (cached by content hash)
and indexed with FAISS (flat, ivf or hnsw); `update` re-indexes changed documents only."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from harness.cost.work import METER, search_work
from harness.errors import ConfigError
from harness.retrieval.base import Hit
from harness.retrieval.chunking import Chunk, Chunker, ChunkerSettings
from harness.retrieval.embedder import Embedder
from harness.types import Document

INDEX_TYPES = ("flat", "ivf", "hnsw")


def build_index(vectors: np.ndarray, index_type: str = "flat", *, nlist: int = 64,
                nprobe: int = 8, hnsw_m: int = 32, ids: np.ndarray | None = None) -> faiss.Index:
    """Inner-product index over normalized vectors (= cosine). `flat` is exact; `ivf`
    clusters into `nlist` lists and searches `nprobe` of them; `hnsw` is a graph index.
    Search returns `ids` (default: row numbers), so entries can be removed and added."""
    dim = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif index_type == "ivf":
        nlist = max(1, min(nlist, vectors.shape[0] // 39 or 1))  # faiss wants ~39 points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(nprobe, nlist)
    elif index_type == "hnsw":
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT))
    else:
        raise ConfigError(f"unknown index type '{index_type}'; choose one of: {', '.join(INDEX_TYPES)}")
    ids = np.arange(len(vectors), dtype=np.int64) if ids is None else ids.astype(np.int64)
    index.add_with_ids(vectors, ids)
    return index


def fits(embedder: Any) -> Any:
    """The embedder, when it tells its window and token lengths (a plugin or test embedder
    may not; then nothing is fitted or counted)."""
    return embedder if hasattr(embedder, "window") and hasattr(embedder, "token_lengths") else None


class DenseRetriever:
    """The run's embedder over a FAISS index. `fit` builds; `update` re-indexes changed
    documents only; `search` returns ranked hits per query (score: cosine)."""

    name = "dense"
    embeds = True  # its chunker is fitted to the embedder's window (make_retriever)

    def __init__(self, services: Any, chunker: Chunker | None = None, *, index_type: str = "flat",
                 nlist: int = 64, nprobe: int = 8) -> None:
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"unknown index type '{index_type}'; choose one of: {', '.join(INDEX_TYPES)}")
        # `services` may be the embedder itself (tests, plain use) or harness Services
        self.embedder: Embedder = (services.get_embedder() if hasattr(services, "get_embedder")
                                   else services)
        self.chunker = chunker or Chunker(ChunkerSettings(), fit_to=fits(self.embedder))
        self.index_type, self.nlist, self.nprobe = index_type, nlist, nprobe
        self.chunks: list[Chunk] = []
        self.vectors = np.zeros((0, 0), np.float32)  # row i: chunks[i]
        self.ids = np.zeros(0, np.int64)  # row i: chunks[i]'s id in the index
        self.index: faiss.Index | None = None
        self._by_id: dict[int, Chunk] = {}

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.chunks = self.chunker(docs)
        vecs, hit, embed_build_s = self.embedder.embed_cached([c.text for c in self.chunks],
                                                               progress=progress)
        t1 = time.perf_counter()
        self.vectors, self.ids = vecs, np.arange(len(self.chunks), dtype=np.int64)
        self._by_id = dict(zip(self.ids.tolist(), self.chunks))
        self.index = build_index(vecs, self.index_type, nlist=self.nlist, nprobe=self.nprobe)
        METER.add({"index_vectors": len(vecs)})
        t2 = time.perf_counter()
        return {"n_chunks": len(self.chunks), "embed_s": t1 - t0, "index_s": t2 - t1,
                "embedding_cache_hit": hit, "embed_build_s": embed_build_s,
                "build_s": embed_build_s + (t2 - t1), "index_bytes": int(vecs.nbytes),
                "cache_hit": hit}

    def update(self, docs: Sequence[Document], changed: set[str] | frozenset[str],
               removed: set[str] | frozenset[str] = frozenset(), *,
               progress: bool = False) -> dict[str, Any]:
        """Re-index the documents in `changed` (new or rewritten; `docs` is the new corpus)
        and drop those in `removed`: only the changed documents' chunks are embedded, every
        other vector is reused. flat and ivf indices are edited in place (ivf keeps its
        trained clusters); hnsw cannot delete, so it is rebuilt from the kept vectors."""
        if self.index is None:
            raise RuntimeError("DenseRetriever.update called before fit")
        t0 = time.perf_counter()
        gone = set(changed) | set(removed)
        keep = np.array([c.doc_id not in gone for c in self.chunks], dtype=bool)
        fresh = self.chunker([d for d in docs if d.id in changed])
        vecs = (self.embedder.embed([c.text for c in fresh], progress=progress) if fresh
                else np.zeros((0, self.vectors.shape[1]), np.float32))
        t1 = time.perf_counter()
        start = int(self.ids.max()) + 1 if len(self.ids) else 0
        new_ids = np.arange(start, start + len(fresh), dtype=np.int64)
        dropped = self.ids[~keep]
        self.chunks = [c for c, k in zip(self.chunks, keep) if k] + fresh
        self.vectors = np.ascontiguousarray(np.concatenate([self.vectors[keep], vecs]))
        self.ids = np.concatenate([self.ids[keep], new_ids])
        for i in dropped.tolist():
            del self._by_id[i]
        self._by_id.update(zip(new_ids.tolist(), fresh))
        if self.index_type == "hnsw":
            self.index = build_index(self.vectors, "hnsw", ids=self.ids)
        else:
            if len(dropped):
                self.index.remove_ids(faiss.IDSelectorBatch(dropped))
            if len(fresh):
                self.index.add_with_ids(vecs, new_ids)
        METER.add({"index_vectors": len(self.vectors) if self.index_type == "hnsw" else len(fresh)})
        t2 = time.perf_counter()
        return {"embedded_chunks": len(fresh), "reused_chunks": int(keep.sum()),
                "removed_chunks": int(len(dropped)), "n_chunks": len(self.chunks),
                "embed_s": t1 - t0, "index_s": t2 - t1, "update_s": t2 - t0,
                "index_bytes": int(self.vectors.nbytes),
                "index_rebuilt": self.index_type == "hnsw"}

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if self.index is None:
            raise RuntimeError("DenseRetriever.search called before fit")
        qv = self.embedder.embed(queries)
        scores, ids = self.index.search(qv, min(k, len(self.chunks)))
        METER.add(search_work(len(queries), self.index.ntotal, qv.shape[1]))
        if METER.active and fits(self.embedder):  # questions the embedder cut (counted, not priced)
            window = self.embedder.window
            over = sum(n > window for n in self.embedder.token_lengths(list(queries)))
            if over:
                METER.add({"queries_over_window": over})
        return [[Hit(self._by_id[int(j)], float(s)) for s, j in zip(srow, jrow) if j >= 0]
                for srow, jrow in zip(scores, ids)]
