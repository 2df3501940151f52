"""Shared by `lora` and `full`: tune a copy of the model with a method (harness.tuning),
then answer like zero-shot prompting with the tuned model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.answering import AnswerSettings
from harness.lm import LM
from harness.prompting import PromptSettings
from harness.training import TrainSettings
from harness.training_data import DataSettings, build_rows
from harness.tuning import Method, fit_tuned, train_example_ids
from harness.types import Example, FitReport, Prediction, Task
from strategies.prompt import PromptStrategy


class TunedStrategy:
    """Tune a copy of the model with `method`, then answer like zero-shot prompting."""

    def __init__(self, lm: LM, prompt: PromptSettings, answer: AnswerSettings, method: Method, *,
                 name: str, data: dict[str, Any], train: dict[str, Any],
                 cache_dir: str | None = None, measure_forgetting: bool = True, seed: int = 0,
                 progress: bool = True) -> None:
        self.name, self.lm, self.prompt, self.answer, self.method = name, lm, prompt, answer, method
        self.data, self.train = DataSettings(**data), TrainSettings(**train)
        self.cache_dir, self.measure_forgetting = cache_dir, measure_forgetting
        self.seed, self.progress = seed, progress
        self.seen_example_ids: set[str] = set()
        self.predictor: PromptStrategy | None = None

    def fit(self, task: Task) -> FitReport:
        rows, val_rows, counts = build_rows(self.lm, self.prompt, task, self.data, self.seed)
        self.seen_example_ids = train_example_ids(rows)
        tuned = fit_tuned(self.lm, self.method, rows, val_rows, self.train,
                          split_hash=task.split_hash, seed=self.seed, cache_dir=self.cache_dir,
                          measure_forgetting=self.measure_forgetting, progress=self.progress,
                          notes={"data": counts})
        self.predictor = PromptStrategy(tuned.lm, self.prompt, self.answer, progress=self.progress)
        return tuned.report

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        if self.predictor is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return self.predictor.predict(examples)

