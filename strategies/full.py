"""Full fine-tuning: every parameter trained (or all but the bottom `freeze_layers`
blocks), on the same training data as LoRA, then zero-shot prompting with the result."""

from __future__ import annotations

from typing import Any

from harness.context import StrategyContext
from harness.tuning import FullSettings, Method
from strategies.tuned import TunedStrategy


def FullStrategy(ctx: StrategyContext, *, freeze_layers: int | float = 0, name: str = "full",
                 **kw: Any) -> TunedStrategy:
    return TunedStrategy(ctx, Method(FullSettings(freeze_layers)), name=name, **kw)
