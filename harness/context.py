"""What the runner gives every strategy: one context object.

A strategy is built as ``MyStrategy(ctx, **knobs)``: ``ctx`` is a StrategyContext, the knobs
are the keys of its YAML under conf/strategy/ (or a user's --config-dir) other than
``_target_``. Everything a strategy may need from the run comes through ``ctx``, so a
strategy in a user's own module gets exactly what the built-in ones get.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.answering import AnswerSettings
from harness.models import LanguageModel
from harness.prompting import PromptSettings
from harness.retrieval import Embedder, Retriever, Services, make_retriever
from harness.types import Pruning

DEFAULT_RETRIEVER = {"_target_": "harness.retrieval.dense.DenseRetriever", "name": "dense"}


@dataclass(frozen=True)
class StrategyContext:
    lm: LanguageModel  # the base model and tokenizer of the run (shared: copy before you change weights)
    prompt: PromptSettings  # the one prompt builder's settings (fairness: use build_messages)
    answer: AnswerSettings  # how predictions are made (use harness.answering.answer)
    get_embedder: Callable[[], Embedder]  # the run's embedder, built on first call, shared
    seed: int = 0  # the run seed: sampling, training order
    cache_dir: str | None = None  # cache root; None: $ADAPTBENCH_CACHE or ~/.cache/adaptbench
    progress: bool = True  # show progress bars on long work
    # the run's retriever and chunker configs (conf/retriever/, conf/chunker/); empty: dense
    # over word chunks with their defaults
    retriever_cfg: Mapping[str, Any] = field(default_factory=dict)
    chunker_cfg: Mapping[str, Any] = field(default_factory=dict)
    # a search trial's pruner (experiment=fair with search.pruner): a strategy that trains
    # calls it after each validation with (epoch, validation loss, last validation?); True:
    # stop training (harness.tuning.fit_tuned takes it as `pruning`). None outside a search.
    pruning: Pruning | None = None

    def with_lm(self, lm: LanguageModel) -> StrategyContext:
        """The same context around another model (a tuned copy, say)."""
        return dataclasses.replace(self, lm=lm)

    def retriever(self, **overrides: Any) -> Retriever:
        """A new retriever of the run's config (`retriever=dense|bm25|hybrid`, `chunker=...`);
        `overrides` replace its knobs (index_type="hnsw", say)."""
        cfg = {**(self.retriever_cfg or DEFAULT_RETRIEVER), **overrides}
        return make_retriever(cfg, self.chunker_cfg or {"name": "words"},
                              Services(self.get_embedder, self.lm, self.progress))
