"""Full fine-tuning: every parameter trained (or all but the bottom `freeze_layers`
blocks), on the same training data as LoRA, then zero-shot prompting with the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.answering import AnswerSettings
from harness.lm import LM
from harness.prompting import PromptSettings
from harness.tuning import FullSettings, Method
from strategies.tuned import TunedStrategy


def FullStrategy(lm: LM, prompt: PromptSettings, answer: AnswerSettings, *, freeze_layers: int = 0,
                 name: str = "full", get_embedder: Callable | None = None,
                 **kw: Any) -> TunedStrategy:
    return TunedStrategy(lm, prompt, answer, Method(FullSettings(freeze_layers)), name=name, **kw)
