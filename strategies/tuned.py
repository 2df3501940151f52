"""Shared by `lora` and `full`: tune a copy of the model with a method (harness.tuning),
then answer like zero-shot prompting with the tuned model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.answering import AnswerSettings
from harness.data.update import TaskUpdate
from harness.lm import LM
from harness.prompting import PromptSettings
from harness.training import TrainSettings
from harness.training_data import DataSettings, build_rows
from harness.tuning import UPDATE_MODES, Method, fit_tuned, train_example_ids, update_tuned
from harness.types import Example, FitReport, Prediction, Task
from strategies.prompt import PromptStrategy


class TunedStrategy:
    """Tune a copy of the model with `method`, then answer like zero-shot prompting."""

    def __init__(self, lm: LM, prompt: PromptSettings, answer: AnswerSettings, method: Method, *,
                 name: str, data: dict[str, Any], train: dict[str, Any],
                 update: dict[str, Any] | None = None, cache_dir: str | None = None,
                 measure_forgetting: bool = True, seed: int = 0, progress: bool = True) -> None:
        self.name, self.lm, self.prompt, self.answer, self.method = name, lm, prompt, answer, method
        self.data, self.train = DataSettings(**data), TrainSettings(**train)
        self.cache_dir, self.measure_forgetting = cache_dir, measure_forgetting
        self.seed, self.progress = seed, progress
        self.seen_example_ids: set[str] = set()
        self.continue_epochs = (update or {}).get("continue_epochs")
        self.predictor: PromptStrategy | None = None
        self.fitted: FitReport | None = None
        self.update_modes = UPDATE_MODES

    def fit(self, task: Task) -> FitReport:
        rows, val_rows, counts = build_rows(self.lm, self.prompt, task, self.data, self.seed)
        self.seen_example_ids = train_example_ids(rows)
        tuned = fit_tuned(self.lm, self.method, rows, val_rows, self.train,
                          split_hash=task.split_hash, seed=self.seed, cache_dir=self.cache_dir,
                          measure_forgetting=self.measure_forgetting, progress=self.progress,
                          notes={"data": counts})
        self.predictor = PromptStrategy(tuned.lm, self.prompt, self.answer, progress=self.progress)
        self.fitted = tuned.report
        return tuned.report

    def update(self, change: TaskUpdate, mode: str) -> FitReport:
        """Learn the new version: `retrain` from the base model on all its rows, or
        `continue` from the fitted artifact on the rows about what changed."""
        if self.fitted is None:
            raise RuntimeError(f"{self.name}: update called before fit")
        rows, val_rows, _ = build_rows(self.lm, self.prompt, change.new, self.data, self.seed)
        tuned = update_tuned(self.lm, self.method, rows, val_rows, self.train, mode=mode,
                             change=change, parent=self.fitted,
                             seed=self.seed, continue_epochs=self.continue_epochs,
                             cache_dir=self.cache_dir, progress=self.progress)
        self.predictor = PromptStrategy(tuned.lm, self.prompt, self.answer, progress=self.progress)
        return tuned.report

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        if self.predictor is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return self.predictor.predict(examples)

