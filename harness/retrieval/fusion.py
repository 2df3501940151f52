"""Hybrid retrieval: dense (FAISS) and BM25 over the same chunks, their rankings fused.

    rrf       reciprocal rank fusion: score = sum over the two rankings of 1 / (rrf_k + rank)
              (Cormack et al., 2009; rrf_k = 60 as there)
    weighted  each ranking's scores min-max normalised over its candidates, then
              weight * dense + (1 - weight) * bm25 (a chunk missing from one list gets 0 there)

Each side contributes its top `candidates` chunks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.retrieval.base import Hit
from harness.retrieval.bm25 import BM25Retriever
from harness.retrieval.chunking import Chunk, Chunker, ChunkerSettings
from harness.retrieval.dense import DenseRetriever
from harness.types import Document

FUSIONS = ("rrf", "weighted")


def rrf(rankings: Sequence[Sequence[str]], rrf_k: int = 60) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (rrf_k + rank)
    return fused


def weighted(a: Sequence[tuple[str, float]], b: Sequence[tuple[str, float]],
             weight: float) -> dict[str, float]:
    def norm(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
        if not pairs:
            return {}
        s = np.array([p[1] for p in pairs], float)
        span = s.max() - s.min()
        vals = (s - s.min()) / span if span > 0 else np.ones_like(s)
        return {k: float(v) for (k, _), v in zip(pairs, vals)}

    na, nb = norm(a), norm(b)
    return {k: weight * na.get(k, 0.0) + (1 - weight) * nb.get(k, 0.0) for k in {*na, *nb}}


class HybridRetriever:
    name = "hybrid"
    embeds = True

    def __init__(self, services: Any, chunker: Chunker | None = None, *, fusion: str = "rrf",
                 weight: float = 0.5, rrf_k: int = 60, candidates: int = 50,
                 dense: dict[str, Any] | None = None, bm25: dict[str, Any] | None = None) -> None:
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown retriever.fusion '{fusion}'; choose one of: {', '.join(FUSIONS)}")
        if not 0 <= weight <= 1 or rrf_k < 1 or candidates < 1:
            raise ConfigError("retriever.weight must be in [0, 1], retriever.rrf_k and "
                              "retriever.candidates >= 1")
        self.chunker = chunker or Chunker(ChunkerSettings())
        self.fusion, self.weight, self.rrf_k, self.candidates = fusion, weight, rrf_k, candidates
        self.dense = DenseRetriever(services, self.chunker, **(dense or {}))
        self.bm25 = BM25Retriever(services, self.chunker, **(bm25 or {}))
        self.label = fusion

    @property
    def chunks(self) -> list[Chunk]:
        return self.dense.chunks

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        d = self.dense.fit(docs, progress=progress)
        b = self.bm25.fit(docs, progress=progress)
        return {"n_chunks": d["n_chunks"], "build_s": d["build_s"] + b["build_s"],
                "index_bytes": d["index_bytes"] + b["index_bytes"], "cache_hit": d["cache_hit"],
                "dense": d, "bm25": b}

    def update(self, docs: Sequence[Document], changed: set[str] | frozenset[str],
               removed: set[str] | frozenset[str] = frozenset(), *,
               progress: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        d = self.dense.update(docs, changed, removed, progress=progress)
        b = self.bm25.update(docs, changed, removed, progress=progress)
        return {**{k: v for k, v in d.items() if not isinstance(v, dict)},
                "update_s": time.perf_counter() - t0, "bm25_update_s": b["update_s"]}

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        depth = max(k, self.candidates)
        dense, sparse = self.dense.search(queries, depth), self.bm25.search(queries, depth)
        out = []
        for dh, sh in zip(dense, sparse):
            by_id = {h.chunk.id: h.chunk for h in [*dh, *sh]}
            if self.fusion == "rrf":
                fused = rrf([[h.chunk.id for h in dh], [h.chunk.id for h in sh]], self.rrf_k)
            else:
                fused = weighted([(h.chunk.id, h.score) for h in dh],
                                 [(h.chunk.id, h.score) for h in sh], self.weight)
            top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            out.append([Hit(by_id[i], s) for i, s in top])
        return out
