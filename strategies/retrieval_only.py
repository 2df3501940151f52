"""Retrieval only: the run's retriever answers nothing; it ranks the corpus for each
question and the run scores that ranking (recall@k, hit@k, MRR, nDCG@10), without running
the model. Sweep retrievers and chunkers with it before spending model time:

    harness-run -m strategy=retrieval_only retriever=dense,bm25,hybrid chunker.size=60,120,240
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.retrieval import RetrievalIndex
from harness.types import Citation, Example, FitReport, Prediction, Task, Usage


class RetrievalOnlyStrategy:
    trains = False
    libraries = ("sentence_transformers",)  # the dense retriever's embedder
    cites = True
    update_modes = ("reindex",)

    def __init__(self, ctx: StrategyContext, *, name: str = "retrieval_only", k: int = 3,
                 depth: int = 10, batch_size: int = 64) -> None:
        if k < 1 or depth < 1 or batch_size < 1:
            raise ConfigError("strategy.k, strategy.depth and strategy.batch_size must be >= 1")
        self.ctx, self.name, self.retrieval_k = ctx, name, k
        self.depth, self.batch_size = max(k, depth), batch_size
        self.index = RetrievalIndex(ctx.retriever(), k)

    def fit(self, task: Task) -> FitReport:
        return self.index.fit(task, progress=self.ctx.progress)

    def update(self, change: TaskUpdate, mode: str = "reindex") -> FitReport:
        if mode != "reindex":
            raise ConfigError(f"unknown retrieval_only update mode '{mode}'; choose one of: reindex")
        return self.index.update(change.new.corpus, change.changed_doc_ids,
                                 change.removed_doc_ids, progress=self.ctx.progress)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        """Per question: the documents of its top `depth` chunks, ranked by their best chunk,
        as citations (no output, no choice: the model is not run)."""
        hits, batch_s, work = self.index.search([e.question for e in examples], self.depth,
                                                self.batch_size)
        preds = []
        for i, (e, hs) in enumerate(zip(examples, hits)):
            best: dict[str, Citation] = {}
            for h in hs:
                if h.chunk.doc_id not in best:
                    best[h.chunk.doc_id] = Citation(h.chunk.doc_id, round(h.score, 5), h.chunk.text)
            in_batch = min(self.batch_size, len(examples) - i // self.batch_size * self.batch_size)
            usage = Usage(retrieval_s=batch_s[i] / in_batch, latency_s=batch_s[i],
                          retrieval_latency_s=batch_s[i], work=work[i])
            preds.append(Prediction(e.id, None, usage=usage, citations=tuple(best.values())))
        return preds
