"""RAG: the corpus is chunked and indexed by the run's retriever (`retriever=dense|bm25|
hybrid`, `chunker=words|sentences|tokens`); each question gets its top-k chunks as numbered
passages within the context budget, and the prediction cites the documents those passages
came from, ranked."""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.answering import answer
from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.models import total_params
from harness.prompting import Passage, build_messages, fit_passages
from harness.retrieval import describe
from harness.system import peak_memory_mb
from harness.types import Citation, Example, FitReport, Prediction, Task
from harness.work import METER


class RAGStrategy:
    trains = False
    cites = True
    update_modes = ("reindex",)

    def __init__(self, ctx: StrategyContext, *, name: str = "rag", k: int = 3) -> None:
        if k < 1:
            raise ConfigError(f"strategy.k must be >= 1, got {k}")
        self.ctx, self.name, self.retrieval_k = ctx, name, k
        self.lm = ctx.lm  # the model that answers (the hybrid swaps in its tuned one)
        self.retriever = ctx.retriever()  # retriever=dense|bm25|hybrid, chunker=...

    def fit(self, task: Task) -> FitReport:
        t0 = time.perf_counter()
        info = self.retriever.fit(task.corpus, progress=self.ctx.progress)
        wall = time.perf_counter() - t0
        return FitReport(
            wall_s=wall, build_s=info["build_s"],
            total_params=total_params(self.lm),
            peak_mem_mb=peak_memory_mb(), artifact_bytes=info["index_bytes"],
            cache_hit=bool(info.get("cache_hit")),
            notes={**info, "retriever": describe(self.retriever), **self.chunking()},
            examples_seen=frozenset(),  # the index holds corpus documents only
        )

    def chunking(self) -> dict:
        chunker = getattr(self.retriever, "chunker", None)  # a plugin retriever may have none
        return chunker.describe() if chunker is not None else {}

    def update(self, change: TaskUpdate, mode: str = "reindex") -> FitReport:
        """Incremental re-index: embed the changed documents only, reuse every other vector."""
        if mode != "reindex":
            raise ConfigError(f"unknown rag update mode '{mode}'; choose one of: reindex")
        info = self.retriever.update(change.new.corpus, change.changed_doc_ids,
                                     change.removed_doc_ids, progress=self.ctx.progress)
        return FitReport(wall_s=info["update_s"], build_s=info["update_s"],
                         total_params=total_params(self.lm),
                         peak_mem_mb=peak_memory_mb(),
                         artifact_bytes=int(info.get("index_bytes", 0)), notes=info,
                         examples_seen=frozenset())

    def passages(self, examples: Sequence[Example]) -> tuple[list[list[Passage]], list[float],
                                                             list[float], list[dict]]:
        """Per example: the top-k passages that fit the context budget, its share of its
        batch's search seconds, that batch's search seconds (its retrieval latency) and what
        that search computed (harness.work)."""
        batch = self.ctx.answer.batch_size
        passages, ret_s, ret_batch_s, ret_work = [], [], [], []
        for start in range(0, len(examples), batch):
            chunk = examples[start:start + batch]
            t0 = time.perf_counter()
            with METER.scope() as work:
                hits = self.retriever.search([e.question for e in chunk], self.retrieval_k)
            wall = time.perf_counter() - t0
            ret_work += [work] * len(chunk)
            for h in hits:
                ranked = [Passage(x.chunk.doc_id, x.chunk.text, x.score) for x in h]
                passages.append(fit_passages(ranked, self.ctx.prompt.context_budget_tokens,
                                             self.lm.count_tokens))
                ret_s.append(wall / len(chunk))
                ret_batch_s.append(wall)
        return passages, ret_s, ret_batch_s, ret_work

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        passages, ret_s, ret_batch_s, ret_work = self.passages(examples)
        messages = [build_messages(self.ctx.prompt, ex.question, passages=ps)
                    for ex, ps in zip(examples, passages)]
        return answer(self.lm, examples, messages, self.ctx.answer, retrieval_s=ret_s,
                      retrieval_batch_s=ret_batch_s, retrieval_work=ret_work,
                      citations=[cite(ps) for ps in passages],
                      progress=self.ctx.progress)


def cite(passages: Sequence[Passage]) -> list[Citation]:
    """Documents behind the passages in the prompt, ranked by their best chunk."""
    best: dict[str, float] = {}
    texts: dict[str, list[str]] = {}
    for p in passages:
        best.setdefault(p.source_id, p.score)
        texts.setdefault(p.source_id, []).append(p.text)
    return [Citation(doc, round(score, 5), "\n\n".join(texts[doc])) for doc, score in best.items()]
