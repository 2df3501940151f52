"""RAG: the corpus is chunked and indexed by the run's retriever (`retriever=dense|bm25|
hybrid`, `chunker=words|sentences|tokens`); each question gets its top-k chunks as numbered
passages within the context budget, and the prediction cites the documents those passages
came from, ranked. Composed of a RetrievalIndex and the run's model."""

from __future__ import annotations

from collections.abc import Sequence

from harness.answering import answer_with_passages
from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.models import total_params
from harness.retrieval import RetrievalIndex
from harness.types import Example, FitReport, Prediction, Task


class RAGStrategy:
    trains = False
    libraries = ("sentence_transformers",)  # the dense retriever's embedder
    cites = True
    update_modes = ("reindex",)

    def __init__(self, ctx: StrategyContext, *, name: str = "rag", k: int = 3) -> None:
        self.ctx, self.name = ctx, name
        self.index = RetrievalIndex(ctx.retriever(), k)  # retriever=..., chunker=...
        self.retrieval_k = k

    def fit(self, task: Task) -> FitReport:
        return self.index.fit(task, total_params=total_params(self.ctx.lm),
                              progress=self.ctx.progress)

    def update(self, change: TaskUpdate, mode: str = "reindex") -> FitReport:
        """Incremental re-index: embed the changed documents only, reuse every other vector."""
        if mode != "reindex":
            raise ConfigError(f"unknown rag update mode '{mode}'; choose one of: reindex")
        return self.index.update(change.new.corpus, change.changed_doc_ids,
                                 change.removed_doc_ids, total_params=total_params(self.ctx.lm),
                                 progress=self.ctx.progress)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        return answer_with_passages(self.ctx.lm, self.index, examples, self.ctx.prompt,
                                    self.ctx.answer, progress=self.ctx.progress)
