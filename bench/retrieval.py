"""Retrieval speed (`make bench`, section "retrieval"): the retrieval-only sweep of 3
retrievers x 3 chunk sizes on the built-in task (its wall time, and each run's recall@3,
MRR, nDCG@10 and search latency), and BM25 index build speed in documents per second."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.questions import megabyte_corpus
from harness.retrieval import BM25Retriever, Chunker, ChunkerSettings

SIZES = (60, 120, 240)
RETRIEVERS = ("dense", "bm25", "hybrid")


def bench_bm25_build(repeats: int = 3) -> dict:
    docs = megabyte_corpus()
    best = float("inf")
    for _ in range(repeats):
        r = BM25Retriever(chunker=Chunker(ChunkerSettings("words", 120, 20)))
        t0 = time.perf_counter()
        info = r.fit(docs)
        best = min(best, time.perf_counter() - t0)
    return {"bm25_documents": len(docs), "bm25_chunks": info["n_chunks"],
            "bm25_corpus_bytes": sum(len(d.text.encode()) for d in docs),
            "bm25_build_s": best, "bm25_documents_per_s": len(docs) / best}


def bench_retrieval_sweep(model_overrides: list[str], work: Path,
                          extra: Sequence[str] = (), retrievers: Sequence[str] = RETRIEVERS,
                          sizes: Sequence[int] = SIZES) -> dict:
    """`extra`: the bench's --sweep-args, less any strategy (this sweep's is retrieval_only);
    `retrievers` x `sizes`: the grid (make bench: 3 x 3)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    args = [sys.executable, "-m", "harness.run.runner", "-m", "strategy=retrieval_only",
            f"retriever={','.join(retrievers)}", f"chunker.size={','.join(map(str, sizes))}",
            "chunker.overlap=10", "progress=false", f"cache_dir={work / 'cache'}",
            f"hydra.sweep.dir={work / 'sweep'}", *model_overrides,
            *(a for a in extra if not a.startswith("strategy="))]
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"the retrieval sweep failed:\n{res.stderr[-3000:]}")
    out: dict = {"sweep_runs": 0, "sweep_s": wall}
    for m_path in sorted((work / "sweep").glob("*/metrics.json")):
        m = json.loads(m_path.read_text())
        cfg = yaml.safe_load((m_path.parent / "config.yaml").read_text())
        name, size = cfg["retriever"]["name"], cfg["chunker"]["size"]
        key = f"{name}@{size}"
        out["sweep_runs"] += m.get("status") == "complete"
        out[f"{key} recall@3 / MRR / nDCG@10 / p95 ms"] = (
            f"{m['recall_at_k']:.3f} / {m['mrr']:.3f} / {m['ndcg_at_10']:.3f} / "
            f"{1000 * m['latency_p95_s']:.0f}")
    return out
