"""PEFT tuning: LoRA (DoRA as a flag), IA3 or prompt tuning on the task's training data
(train-split question/answer pairs, corpus documents and their paraphrases), then
zero-shot prompting with the tuned model. The adapter can be merged for predict."""

from __future__ import annotations

from typing import Any

from harness.context import StrategyContext
from harness.tuning import AdapterSettings, Method
from strategies.tuned import TunedStrategy


def LoRAStrategy(ctx: StrategyContext, *, adapter: dict[str, Any], name: str = "lora",
                 **kw: Any) -> TunedStrategy:
    return TunedStrategy(ctx, Method(AdapterSettings(**adapter)), name=name, **kw)


LoRAStrategy.libraries = ("peft",)  # imported before the run's memory baseline
