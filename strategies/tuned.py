"""Shared by `lora` and `full`: tune a copy of the model with a method (harness.tuning),
then answer like zero-shot prompting with the tuned model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.context import StrategyContext
from harness.data.update import TaskUpdate
from harness.models import require_local
from harness.tuning import (
    UPDATE_MODES,
    DataSettings,
    Method,
    TrainSettings,
    build_rows,
    fit_tuned,
    update_tuned,
)
from harness.types import Example, FitReport, Prediction, Task
from strategies.prompt import PromptStrategy


class TunedStrategy:
    """Tune a copy of the model with `method`, then answer like zero-shot prompting."""

    trains = True
    cites = False
    retrieval_k = None
    update_modes = UPDATE_MODES

    def __init__(self, ctx: StrategyContext, method: Method, *, name: str,
                 data: dict[str, Any], train: dict[str, Any],
                 update: dict[str, Any] | None = None, measure_forgetting: bool = True) -> None:
        self.ctx, self.name, self.method = ctx, name, method
        require_local(ctx.lm, name)  # a served model's weights cannot be tuned: say so now
        method.check(ctx.lm.device)  # e.g. QLoRA without a working 4-bit bitsandbytes: now
        self.data, self.train = DataSettings(**data), TrainSettings.from_config(train)
        self.measure_forgetting = measure_forgetting
        self.continue_epochs = (update or {}).get("continue_epochs")
        self.predictor: PromptStrategy | None = None
        self.fitted: FitReport | None = None

    def fit(self, task: Task) -> FitReport:
        ctx = self.ctx
        rows, val_rows, counts = build_rows(ctx.lm, ctx.prompt, task, self.data, ctx.seed)
        tuned = fit_tuned(ctx.lm, self.method, rows, val_rows, self.train,
                          split_hash=task.split_hash, seed=ctx.seed, cache_dir=ctx.cache_dir,
                          forgetting=self.measure_forgetting, progress=ctx.progress,
                          notes={"data": counts}, pruning=ctx.pruning)
        self.predictor = PromptStrategy(ctx.with_lm(tuned.lm))
        self.fitted = tuned.report
        return tuned.report

    def update(self, change: TaskUpdate, mode: str) -> FitReport:
        """Learn the new version: `retrain` from the base model on all its rows, or
        `continue` from the fitted artifact on the rows about what changed."""
        if self.fitted is None:
            raise RuntimeError(f"{self.name}: update called before fit")
        ctx = self.ctx
        rows, val_rows, _ = build_rows(ctx.lm, ctx.prompt, change.new, self.data, ctx.seed)
        tuned = update_tuned(ctx.lm, self.method, rows, val_rows, self.train, mode=mode,
                             change=change, parent=self.fitted, seed=ctx.seed,
                             continue_epochs=self.continue_epochs, cache_dir=ctx.cache_dir,
                             progress=ctx.progress)
        self.predictor = PromptStrategy(ctx.with_lm(tuned.lm))
        return tuned.report

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        if self.predictor is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return self.predictor.predict(examples)
