"""Prompting: zero-shot (k_shot=0) or few-shot with k examples from the train split,
picked at random (seeded) or nearest to the question by embedding."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import numpy as np

from harness.answering import answer
from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.models import total_params
from harness.prompting import build_messages
from harness.system import peak_memory_mb
from harness.types import Example, FitReport, Prediction, Task

SHOT_SELECTION = ("random", "nearest")


class PromptStrategy:
    trains = False
    cites = False
    retrieval_k = None
    update_modes = ("none",)

    def __init__(self, ctx: StrategyContext, *, name: str = "prompt", k_shot: int = 0,
                 shot_selection: str = "random") -> None:
        if k_shot < 0:
            raise ConfigError(f"strategy.k_shot must be >= 0, got {k_shot}")
        if shot_selection not in SHOT_SELECTION:
            raise ConfigError(f"unknown strategy.shot_selection '{shot_selection}'; "
                              f"choose one of: {', '.join(SHOT_SELECTION)}")
        self.ctx, self.name = ctx, name
        self.k_shot, self.shot_selection = k_shot, shot_selection
        self.pool: list[Example] = []
        self.pool_vecs: np.ndarray | None = None

    def fit(self, task: Task) -> FitReport:
        t0 = time.perf_counter()
        self.pool = task.split("train") if self.k_shot else []
        hit, build_s = False, None
        if self.k_shot and self.shot_selection == "nearest":
            self.pool_vecs, hit, build_s = self.ctx.get_embedder().embed_cached(
                [e.question for e in self.pool])
        wall = time.perf_counter() - t0
        return FitReport(
            wall_s=wall, build_s=build_s,
            total_params=total_params(self.ctx.lm),
            peak_mem_mb=peak_memory_mb(), cache_hit=hit,
            notes={"k_shot": self.k_shot, "shot_pool_size": len(self.pool)},
            examples_seen=frozenset(e.id for e in self.pool),
        )

    def update(self, change: TaskUpdate, mode: str = "none") -> FitReport:
        """Nothing to re-learn: the model knows only what the prompt holds. A few-shot pool
        is refreshed from the new version's train split."""
        if mode != "none":
            raise ConfigError(f"unknown prompt update mode '{mode}'; choose one of: none")
        return self.fit(change.new)

    def _shots(self, examples: Sequence[Example]) -> list[list[Example]]:
        if not self.k_shot:
            return [[] for _ in examples]
        k = min(self.k_shot, len(self.pool))
        if self.shot_selection == "random":
            rng = random.Random(self.ctx.seed)
            return [rng.sample(self.pool, k) for _ in examples]
        qv = self.ctx.get_embedder().embed([e.question for e in examples])
        top = np.argsort(-(qv @ self.pool_vecs.T), axis=1)[:, :k]
        return [[self.pool[j] for j in row] for row in top]

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        shots = self._shots(examples)
        messages = [
            build_messages(self.ctx.prompt, ex.question,
                           shots=[(s.question, s.answer) for s in sh])
            for ex, sh in zip(examples, shots)
        ]
        return answer(self.ctx.lm, examples, messages, self.ctx.answer, progress=self.ctx.progress)
