"""Reranking: a second stage over any retriever's top `candidates` chunks.

    cross_encoder  a sentence-transformers CrossEncoder (`retriever.rerank_model`: any id or
                   local path; none is bundled) scores each (question, chunk) pair
    lm             the run's own model scores each chunk by the log-likelihood of the
                   question after it (mean per token), so no extra model is needed

The reranker's seconds are part of the search, so they count in retrieval latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import ConfigError
from harness.retrieval.base import Hit
from harness.types import Document

RERANKERS = ("cross_encoder", "lm")
LM_INSTRUCTION = "Write a question that this passage answers."


class CrossEncoderScorer:
    def __init__(self, model: str | None, batch_size: int = 16) -> None:
        if not model:
            raise ConfigError("retriever.rerank=cross_encoder needs retriever.rerank_model (a "
                              "sentence-transformers CrossEncoder id or path)")
        from sentence_transformers import CrossEncoder

        self.model, self.batch_size = CrossEncoder(model), batch_size

    def __call__(self, query: str, texts: Sequence[str]) -> list[float]:
        scores = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                    show_progress_bar=False)
        return [float(s) for s in scores]


class LMScorer:
    """log p(question | passage) per token with the run's model (cached like any call)."""

    def __init__(self, lm: Any, batch_size: int = 16) -> None:
        if lm is None:
            raise ConfigError("retriever.rerank=lm needs the run's model")
        self.lm, self.batch_size = lm, batch_size

    def __call__(self, query: str, texts: Sequence[str]) -> list[float]:
        if getattr(self.lm, "where", "local") != "local":  # asked on first use, not at build
            check = self.lm.loglik_check()
            if not check.exact:
                raise ConfigError(f"retriever.rerank=lm scores passages by the log-likelihood of "
                                  f"the question, which model {self.lm.name} cannot give "
                                  f"({check.reason}); use rerank=cross_encoder")
        prompts = [self.lm.render([{"role": "user", "content": f"Passage:\n{t}\n\n{LM_INSTRUCTION}"}])
                   for t in texts]
        res = self.lm.score_choices(prompts, [[query]] * len(prompts), batch_size=self.batch_size)
        return [r.logprobs[0] / max(r.choice_tokens[0], 1) for r in res]


class Reranked:
    """A retriever whose top `candidates` hits are reordered by a scorer."""

    def __init__(self, base: Any, scorer: Any, kind: str, candidates: int = 20) -> None:
        if candidates < 1:
            raise ConfigError(f"retriever.rerank_candidates must be >= 1, got {candidates}")
        self.base, self.scorer, self.kind, self.candidates = base, scorer, kind, candidates
        self.name = base.name

    @property
    def chunks(self):
        return self.base.chunks

    @property
    def chunker(self):
        return getattr(self.base, "chunker", None)

    def fit(self, docs: Sequence[Document], *, progress: bool = False) -> dict[str, Any]:
        return self.base.fit(docs, progress=progress)

    def update(self, docs, changed, removed=frozenset(), *, progress: bool = False) -> dict[str, Any]:
        return self.base.update(docs, changed, removed, progress=progress)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        out = []
        for q, hits in zip(queries, self.base.search(queries, max(k, self.candidates))):
            scores = self.scorer(q, [h.chunk.text for h in hits]) if hits else []
            ranked = sorted(zip(hits, scores), key=lambda hs: (-hs[1], hs[0].chunk.id))[:k]
            out.append([Hit(h.chunk, s) for h, s in ranked])
        return out


def make_scorer(kind: str, model: str | None, services: Any, batch_size: int = 16):
    if kind == "cross_encoder":
        return CrossEncoderScorer(model, batch_size)
    if kind == "lm":
        return LMScorer(services.lm, batch_size)
    raise ConfigError(f"unknown retriever.rerank '{kind}'; choose null or one of: {', '.join(RERANKERS)}")
