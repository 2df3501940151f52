"""Hybrid: a tuned model answering with retrieved context; predictions cite like RAG.

mode "lora+rag": the LoRA model of the `lora` strategy (same data and settings give the
                 same cached adapter) used with the RAG retriever at inference.
mode "raft":     RAFT-style training (Zhang et al. 2024): each train-split question with
                 retrieved distractor passages, its gold document present with probability
                 `raft.p_gold`, so the model learns to use context and ignore noise.
                 `raft.epochs` and `raft.max_seq_len` replace the lora settings here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from harness.answering import answer_with_passages
from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.models import require_local, total_params
from harness.prompting import Passage, fit_passages
from harness.retrieval import RetrievalIndex
from harness.tuning import (
    UPDATE_MODES,
    AdapterSettings,
    DataSettings,
    Method,
    TrainSettings,
    build_rows,
    fit_tuned,
    raft_rows,
    update_tuned,
)
from harness.types import Example, FitReport, Prediction, Task

MODES = ("lora+rag", "raft")


class HybridStrategy:
    trains = True
    libraries = ("peft", "sentence_transformers")
    cites = True
    # reindex: the retriever only (the model keeps its old knowledge); reindex+<m>: also
    # the model, by the tuned update mode <m>.
    update_modes = ("reindex", *(f"reindex+{m}" for m in UPDATE_MODES))

    def __init__(self, ctx: StrategyContext, *, name: str = "hybrid", mode: str = "raft",
                 retrieval: dict[str, Any], adapter: dict[str, Any], data: dict[str, Any],
                 train: dict[str, Any], raft: dict[str, Any], update: dict[str, Any] | None = None,
                 measure_forgetting: bool = True) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown strategy.mode '{mode}' for hybrid; choose one of: "
                              f"{', '.join(MODES)}")
        p_gold, n_distract = float(raft.get("p_gold", 0.8)), int(raft.get("n_distractors", 3))
        if mode == "raft":  # rows with passages are longer: their own length and epochs
            train = {**train, "epochs": raft.get("epochs", train.get("epochs"))}
            data = {**data, "max_seq_len": raft.get("max_seq_len", data.get("max_seq_len"))}
        if not 0.0 <= p_gold <= 1.0 or n_distract < 0:
            raise ConfigError("strategy.raft.p_gold must be in [0, 1] and "
                              "strategy.raft.n_distractors >= 0")
        require_local(ctx.lm, name)  # a served model's weights cannot be tuned: say so now
        self.ctx, self.name, self.mode = ctx, name, mode
        self.p_gold, self.n_distractors = p_gold, n_distract
        self.method = Method(AdapterSettings(**adapter))
        self.method.check(ctx.lm.device)  # fail now, not deep inside training
        self.data, self.train = DataSettings(**data), TrainSettings.from_config(train)
        self.measure_forgetting = measure_forgetting
        self.index = RetrievalIndex(ctx.retriever(), int(retrieval.get("k", 3)))
        self.retrieval_k = self.index.k
        self.lm = ctx.lm  # the model that answers: the tuned one once fit
        self.continue_epochs = (update or {}).get("continue_epochs")
        self.tuned_report: FitReport | None = None

    def _raft_rows(self, examples: Sequence[Example], tag: str, seed: int):
        retriever = self.index.retriever
        first_chunk = {}
        for c in retriever.chunks:
            first_chunk.setdefault(c.doc_id, c)

        def retrieve(questions: Sequence[str]) -> list[list[Passage]]:
            hits = retriever.search(questions, self.n_distractors + 2)
            return [[Passage(h.chunk.doc_id, h.chunk.text, h.score) for h in hs] for hs in hits]

        def gold(doc_id: str) -> Passage:
            return Passage(doc_id, first_chunk[doc_id].text, 1.0)

        def budget(ps: list[Passage]) -> list[Passage]:
            return fit_passages(ps, self.ctx.prompt.context_budget_tokens, self.ctx.lm.count_tokens)

        return raft_rows(self.ctx.lm, self.ctx.prompt, examples, retrieve, gold, budget=budget,
                         p_gold=self.p_gold, n_distractors=self.n_distractors, seed=seed,
                         max_len=self.data.max_seq_len, source=tag)

    def _rows(self, task: Task):
        if self.mode == "lora+rag":
            return build_rows(self.ctx.lm, self.ctx.prompt, task, self.data, self.ctx.seed)
        rows = self._raft_rows(task.split("train"), "raft", self.ctx.seed)
        val_rows = self._raft_rows(task.split("val"), "raftval", self.ctx.seed + 1)
        return rows, val_rows, {"raft_rows": len(rows), "val_rows": len(val_rows)}

    def fit(self, task: Task) -> FitReport:
        index_report = self.index.fit(task, total_params=total_params(self.ctx.lm),
                                      progress=self.ctx.progress)
        rows, val_rows, counts = self._rows(task)
        notes = {"mode": self.mode, "data": counts}
        if self.mode == "raft":
            notes["raft"] = {"p_gold": self.p_gold, "n_distractors": self.n_distractors}
        ctx = self.ctx
        tuned = fit_tuned(ctx.lm, self.method, rows, val_rows, self.train,
                          split_hash=task.split_hash, seed=ctx.seed, cache_dir=ctx.cache_dir,
                          forgetting=self.measure_forgetting, progress=ctx.progress,
                          notes=notes, pruning=ctx.pruning)
        self.lm = tuned.lm
        self.tuned_report = tuned.report
        return _combined(tuned.report, index_report)

    def update(self, change: TaskUpdate, mode: str) -> FitReport:
        """Re-index the changed documents (as rag); with reindex+continue / reindex+retrain
        also teach the model the new version (as lora), from the updated index's rows."""
        if mode not in self.update_modes:
            raise ConfigError(f"unknown hybrid update mode '{mode}'; choose one of: "
                             f"{', '.join(self.update_modes)}")
        if self.tuned_report is None:
            raise RuntimeError(f"{self.name}: update called before fit")
        index_report = self.index.update(change.new.corpus, change.changed_doc_ids,
                                         change.removed_doc_ids,
                                         total_params=total_params(self.ctx.lm),
                                         progress=self.ctx.progress)
        if mode == "reindex":
            return index_report
        rows, val_rows, _ = self._rows(change.new)
        ctx = self.ctx
        tuned = update_tuned(ctx.lm, self.method, rows, val_rows, self.train,
                             mode=mode.split("+", 1)[1], change=change,
                             parent=self.tuned_report, seed=ctx.seed,
                             continue_epochs=self.continue_epochs,
                             cache_dir=ctx.cache_dir, progress=ctx.progress)
        self.lm = tuned.lm
        return _combined(tuned.report, index_report)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        return answer_with_passages(self.lm, self.index, examples, self.ctx.prompt,
                                    self.ctx.answer, progress=self.ctx.progress)


def _combined(tuned: FitReport, index: FitReport) -> FitReport:
    """The tuned model's report with the index's seconds and bytes added."""
    return dataclasses.replace(
        tuned, wall_s=tuned.wall_s + index.wall_s,
        build_s=(tuned.build_s or tuned.wall_s) + (index.build_s or index.wall_s),
        artifact_bytes=tuned.artifact_bytes + index.artifact_bytes,
        notes={**tuned.notes, "index": index.notes},
    )
