"""What the runner gives every strategy: one context object.

A strategy is built as ``MyStrategy(ctx, **knobs)``: ``ctx`` is a StrategyContext, the knobs
are the keys of its YAML under conf/strategy/ (or a user's --config-dir) other than
``_target_``. Everything a strategy may need from the run comes through ``ctx``, so a
strategy in a user's own module gets exactly what the built-in ones get.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.answering import AnswerSettings
from harness.lm import LM
from harness.prompting import PromptSettings
from harness.retrieval import Embedder, Retriever


@dataclass(frozen=True)
class StrategyContext:
    lm: LM  # the base model and tokenizer of the run (shared: copy before you change weights)
    prompt: PromptSettings  # the one prompt builder's settings (fairness: use build_messages)
    answer: AnswerSettings  # how predictions are made (use harness.answering.answer)
    get_embedder: Callable[[], Embedder]  # the run's embedder, built on first call, shared
    seed: int = 0  # the run seed: sampling, training order
    cache_dir: str | None = None  # cache root; None: $ADAPTBENCH_CACHE or ~/.cache/adaptbench
    progress: bool = True  # show progress bars on long work

    def with_lm(self, lm: LM) -> StrategyContext:
        """The same context around another model (a tuned copy, say)."""
        return dataclasses.replace(self, lm=lm)

    def retriever(self, **settings: Any) -> Retriever:
        """A dense retriever over the run's embedder (chunk_words, overlap_words, index_type,
        nlist, nprobe as in conf/strategy/rag.yaml)."""
        return Retriever(self.get_embedder(), **settings)
