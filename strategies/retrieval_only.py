"""Retrieval only: the run's retriever answers nothing; it ranks the corpus for each
question and the run scores that ranking (recall@k, hit@k, MRR, nDCG@10), without running
the model. Sweep retrievers and chunkers with it before spending model time:

    harness-run -m strategy=retrieval_only retriever=dense,bm25,hybrid chunker.size=60,120,240
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.types import Citation, Example, FitReport, Prediction, Task, Usage
from harness.work import METER
from strategies.rag import RAGStrategy


class RetrievalOnlyStrategy:
    trains = False
    cites = True
    update_modes = ("reindex",)

    def __init__(self, ctx: StrategyContext, *, name: str = "retrieval_only", k: int = 3,
                 depth: int = 10, batch_size: int = 64) -> None:
        if k < 1 or depth < 1 or batch_size < 1:
            raise ConfigError("strategy.k, strategy.depth and strategy.batch_size must be >= 1")
        self.ctx, self.name, self.retrieval_k = ctx, name, k
        self.depth, self.batch_size = max(k, depth), batch_size
        self.index = RAGStrategy(ctx, name=name, k=k)  # its fit and update build the index

    def fit(self, task: Task) -> FitReport:
        return self.index.fit(task)

    def update(self, change: TaskUpdate, mode: str = "reindex") -> FitReport:
        return self.index.update(change, mode)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        """Per question: the documents of its top `depth` chunks, ranked by their best chunk,
        as citations (no output, no choice: the model is not run)."""
        preds = []
        for start in range(0, len(examples), self.batch_size):
            batch = examples[start:start + self.batch_size]
            t0 = time.perf_counter()
            with METER.scope() as work:
                hits = self.index.retriever.search([e.question for e in batch], self.depth)
            wall = time.perf_counter() - t0
            for e, hs in zip(batch, hits):
                best: dict[str, Citation] = {}
                for h in hs:
                    if h.chunk.doc_id not in best:
                        best[h.chunk.doc_id] = Citation(h.chunk.doc_id, round(h.score, 5), h.chunk.text)
                usage = Usage(retrieval_s=wall / len(batch), latency_s=wall,
                              retrieval_latency_s=wall, work=work)
                preds.append(Prediction(e.id, None, usage=usage, citations=tuple(best.values())))
        return preds
