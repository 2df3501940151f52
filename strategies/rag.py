"""RAG: the corpus is chunked, embedded once (cached) and indexed with FAISS; each
question gets its top-k chunks as numbered passages within the context budget, and the
prediction cites the documents those passages came from, ranked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from harness.answering import AnswerSettings, answer
from harness.data.update import TaskUpdate
from harness.lm import LM
from harness.prompting import Passage, PromptSettings, build_messages, fit_passages
from harness.retrieval import Embedder, Retriever
from harness.system import peak_memory_mb
from harness.types import Citation, Example, FitReport, Prediction, Task


class RAGStrategy:
    def __init__(self, lm: LM, prompt: PromptSettings, answer: AnswerSettings, *,
                 get_embedder: Callable[[], Embedder], name: str = "rag", k: int = 3,
                 chunk_words: int = 120, overlap_words: int = 20, index_type: str = "flat",
                 nlist: int = 64, nprobe: int = 8, seed: int = 0, progress: bool = True) -> None:
        if k < 1:
            raise ValueError(f"strategy.k must be >= 1, got {k}")
        self.name, self.lm, self.prompt, self.answer = name, lm, prompt, answer
        self.k, self.seed, self.progress = k, seed, progress
        self.retriever = Retriever(get_embedder(), chunk_words=chunk_words,
                                   overlap_words=overlap_words, index_type=index_type,
                                   nlist=nlist, nprobe=nprobe)
        self.seen_example_ids: set[str] = set()  # the index holds corpus documents only
        self.update_modes = ("reindex",)

    def fit(self, task: Task) -> FitReport:
        t0 = time.perf_counter()
        info = self.retriever.fit(task.corpus, progress=self.progress)
        wall = time.perf_counter() - t0
        return FitReport(
            wall_s=wall, build_s=info["build_s"],
            total_params=sum(p.numel() for p in self.lm.model.parameters()),
            peak_mem_mb=peak_memory_mb(), artifact_bytes=info["index_bytes"],
            cache_hit=info["embedding_cache_hit"], notes=info,
        )

    def update(self, change: TaskUpdate, mode: str = "reindex") -> FitReport:
        """Incremental re-index: embed the changed documents only, reuse every other vector."""
        if mode != "reindex":
            raise ValueError(f"unknown rag update mode '{mode}'; choose one of: reindex")
        info = self.retriever.update(change.new.corpus, change.changed_doc_ids,
                                     change.removed_doc_ids, progress=self.progress)
        return FitReport(wall_s=info["update_s"], build_s=info["update_s"],
                         total_params=sum(p.numel() for p in self.lm.model.parameters()),
                         peak_mem_mb=peak_memory_mb(), artifact_bytes=int(self.retriever.vectors.nbytes),
                         notes=info)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        batch = self.answer.batch_size
        passages, ret_s, ret_batch_s = [], [], []
        for start in range(0, len(examples), batch):
            chunk = examples[start:start + batch]
            t0 = time.perf_counter()
            hits = self.retriever.search([e.question for e in chunk], self.k)
            wall = time.perf_counter() - t0
            for h in hits:
                ranked = [Passage(x.chunk.doc_id, x.chunk.text, x.score) for x in h]
                passages.append(fit_passages(ranked, self.prompt.context_budget_tokens,
                                             self.lm.count_tokens))
                ret_s.append(wall / len(chunk))
                ret_batch_s.append(wall)
        messages = [build_messages(self.prompt, ex.question, passages=ps)
                    for ex, ps in zip(examples, passages)]
        citations = [_cite(ps) for ps in passages]
        return answer(self.lm, examples, messages, self.answer, retrieval_s=ret_s,
                      retrieval_batch_s=ret_batch_s, citations=citations, can_cite=True,
                      progress=self.progress)


def _cite(passages: Sequence[Passage]) -> list[Citation]:
    """Documents behind the passages in the prompt, ranked by their best chunk."""
    best: dict[str, float] = {}
    for p in passages:
        best.setdefault(p.source_id, p.score)
    return [Citation(doc, round(score, 5)) for doc, score in best.items()]
