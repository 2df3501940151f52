"""Prompting: zero-shot (k_shot=0) or few-shot with k examples from the train split,
picked at random (seeded) or nearest to the question by embedding."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import numpy as np

from harness.answering import AnswerSettings, answer
from harness.data.update import TaskUpdate
from harness.lm import LM
from harness.prompting import PromptSettings, build_messages
from harness.retrieval import Embedder
from harness.system import peak_memory_mb
from harness.types import Example, FitReport, Prediction, Task

SHOT_SELECTION = ("random", "nearest")


class PromptStrategy:
    def __init__(self, lm: LM, prompt: PromptSettings, answer: AnswerSettings, *,
                 get_embedder: Callable[[], Embedder] | None = None, name: str = "prompt",
                 k_shot: int = 0, shot_selection: str = "random", seed: int = 0,
                 progress: bool = True) -> None:
        if k_shot < 0:
            raise ValueError(f"strategy.k_shot must be >= 0, got {k_shot}")
        if shot_selection not in SHOT_SELECTION:
            raise ValueError(f"unknown shot_selection '{shot_selection}'; "
                             f"choose one of: {', '.join(SHOT_SELECTION)}")
        self.name, self.lm, self.prompt, self.answer = name, lm, prompt, answer
        self.k_shot, self.shot_selection, self.seed = k_shot, shot_selection, seed
        self.get_embedder, self.progress = get_embedder, progress
        self.pool: list[Example] = []
        self.pool_vecs: np.ndarray | None = None
        self.seen_example_ids: set[str] = set()  # what fit saw; the runner checks it against test
        self.update_modes = ("none",)

    def fit(self, task: Task) -> FitReport:
        t0 = time.perf_counter()
        self.pool = task.split("train") if self.k_shot else []
        self.seen_example_ids = {e.id for e in self.pool}
        hit, build_s = False, None
        if self.k_shot and self.shot_selection == "nearest":
            if self.get_embedder is None:
                raise ValueError("shot_selection=nearest needs an embedder")
            self.pool_vecs, hit, build_s = self.get_embedder().embed_cached(
                [e.question for e in self.pool])
        wall = time.perf_counter() - t0
        return FitReport(
            wall_s=wall, build_s=build_s,
            total_params=sum(p.numel() for p in self.lm.model.parameters()),
            peak_mem_mb=peak_memory_mb(), cache_hit=hit,
            notes={"k_shot": self.k_shot, "shot_pool_size": len(self.pool)},
        )

    def update(self, change: TaskUpdate, mode: str = "none") -> FitReport:
        """Nothing to re-learn: the model knows only what the prompt holds. A few-shot pool
        is refreshed from the new version's train split."""
        if mode != "none":
            raise ValueError(f"unknown prompt update mode '{mode}'; choose one of: none")
        return self.fit(change.new)

    def _shots(self, examples: Sequence[Example]) -> list[list[Example]]:
        if not self.k_shot:
            return [[] for _ in examples]
        k = min(self.k_shot, len(self.pool))
        if self.shot_selection == "random":
            rng = random.Random(self.seed)
            return [rng.sample(self.pool, k) for _ in examples]
        qv = self.get_embedder().embed([e.question for e in examples])
        top = np.argsort(-(qv @ self.pool_vecs.T), axis=1)[:, :k]
        return [[self.pool[j] for j in row] for row in top]

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        shots = self._shots(examples)
        messages = [
            build_messages(self.prompt, ex.question, shots=[(s.question, s.answer) for s in sh])
            for ex, sh in zip(examples, shots)
        ]
        return answer(self.lm, examples, messages, self.answer, progress=self.progress)

