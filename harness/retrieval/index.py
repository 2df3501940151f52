"""The corpus behind a retriever, as a part strategies compose: rag (index + the model),
hybrid (index + a tuned model) and retrieval_only (index alone) each hold one, rather than
holding each other.

    index = RetrievalIndex(ctx.retriever(), k=3)
    report = index.fit(task, total_params=...)          # chunk, embed, build
    got = index.passages(examples, batch_size=16, budget_tokens=512, count_tokens=lm.count_tokens)
    # or, all at once: harness.answering.answer_with_passages(lm, index, examples, ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.cost.work import METER
from harness.errors import ConfigError
from harness.prompting import Passage, fit_passages
from harness.retrieval.base import Hit
from harness.system import peak_memory_mb
from harness.types import Citation, Document, Example, FitReport, Task


def describe(retriever: Any) -> str:
    """How the report labels a retriever: 'bm25', 'hybrid, rrf', 'dense, reranked (lm)'."""
    parts = [getattr(retriever, "name", type(retriever).__name__)]
    base = getattr(retriever, "base", retriever)
    if getattr(base, "label", None):
        parts.append(base.label)
    if getattr(retriever, "kind", None):
        parts.append(f"reranked ({retriever.kind})")
    return ", ".join(parts)


@dataclass(frozen=True)
class Retrieved:
    """Per question: the passages that fit the prompt's budget, and what finding them took."""
    passages: list[list[Passage]]
    seconds: list[float]  # the question's share of its batch's search seconds
    batch_seconds: list[float]  # that batch's search seconds (the question's retrieval latency)
    work: list[dict[str, float]]  # what that search computed (harness.cost.work)

    @property
    def citations(self) -> list[list[Citation]]:
        return [cite(ps) for ps in self.passages]

    def timing(self) -> dict[str, Any]:
        """The keyword arguments harness.answering.answer takes for retrieval."""
        return {"retrieval_s": self.seconds, "retrieval_batch_s": self.batch_seconds,
                "retrieval_work": self.work}


class RetrievalIndex:
    def __init__(self, retriever: Any, k: int) -> None:
        if k < 1:
            raise ConfigError(f"strategy.k must be >= 1, got {k}")
        self.retriever, self.k = retriever, k

    @property
    def chunks(self) -> list:
        return self.retriever.chunks

    def chunking(self) -> dict:
        chunker = getattr(self.retriever, "chunker", None)  # a plugin retriever may have none
        return chunker.describe() if chunker is not None else {}

    def fit(self, task: Task, *, total_params: int = 0, progress: bool = False) -> FitReport:
        """Chunk and index the task's corpus."""
        t0 = time.perf_counter()
        info = self.retriever.fit(task.corpus, progress=progress)
        return FitReport(
            wall_s=time.perf_counter() - t0, build_s=info["build_s"], total_params=total_params,
            peak_mem_mb=peak_memory_mb(), artifact_bytes=info["index_bytes"],
            cache_hit=bool(info.get("cache_hit")),
            notes={**info, "retriever": describe(self.retriever), **self.chunking()},
            examples_seen=frozenset(),  # the index holds corpus documents only
        )

    def update(self, corpus: Sequence[Document], changed: Sequence[str], removed: Sequence[str],
               *, total_params: int = 0, progress: bool = False) -> FitReport:
        """Incremental re-index: embed the changed documents only, reuse every other vector."""
        info = self.retriever.update(corpus, changed, removed, progress=progress)
        return FitReport(wall_s=info["update_s"], build_s=info["update_s"],
                         total_params=total_params, peak_mem_mb=peak_memory_mb(),
                         artifact_bytes=int(info.get("index_bytes", 0)), notes=info,
                         examples_seen=frozenset())

    def search(self, questions: Sequence[str], depth: int,
               batch_size: int) -> tuple[list[list[Hit]], list[float], list[dict[str, float]]]:
        """The top `depth` hits of each question, searched `batch_size` at a time; per
        question, its batch's seconds and work."""
        hits: list[list[Hit]] = []
        batch_s: list[float] = []
        work: list[dict[str, float]] = []
        for start in range(0, len(questions), batch_size):
            batch = questions[start:start + batch_size]
            t0 = time.perf_counter()
            with METER.scope() as w:
                hits += self.retriever.search(list(batch), depth)
            wall = time.perf_counter() - t0
            batch_s += [wall] * len(batch)
            work += [w] * len(batch)
        return hits, batch_s, work

    def passages(self, examples: Sequence[Example], *, batch_size: int, budget_tokens: int,
                 count_tokens: Callable[[str], int]) -> Retrieved:
        """Per example: its top-k passages, in rank order, that fit the context budget."""
        hits, batch_s, work = self.search([e.question for e in examples], self.k, batch_size)
        passages = [fit_passages([Passage(x.chunk.doc_id, x.chunk.text, x.score) for x in h],
                                 budget_tokens, count_tokens) for h in hits]
        sizes = [min(batch_size, len(examples) - i // batch_size * batch_size)
                 for i in range(len(examples))]
        return Retrieved(passages, [s / n for s, n in zip(batch_s, sizes)], batch_s, work)


def cite(passages: Sequence[Passage]) -> list[Citation]:
    """Documents behind the passages in the prompt, ranked by their best chunk."""
    best: dict[str, float] = {}
    texts: dict[str, list[str]] = {}
    for p in passages:
        best.setdefault(p.source_id, p.score)
        texts.setdefault(p.source_id, []).append(p.text)
    return [Citation(doc, round(score, 5), "\n\n".join(texts[doc])) for doc, score in best.items()]
