"""PEFT tuning: LoRA (DoRA as a flag), IA3 or prompt tuning on the task's training data
(train-split question/answer pairs, corpus documents and their paraphrases), then
zero-shot prompting with the tuned model. The adapter can be merged for predict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.answering import AnswerSettings
from harness.lm import LM
from harness.prompting import PromptSettings
from harness.tuning import AdapterSettings, Method
from strategies.tuned import TunedStrategy


def LoRAStrategy(lm: LM, prompt: PromptSettings, answer: AnswerSettings, *, adapter: dict[str, Any],
                 name: str = "lora", get_embedder: Callable | None = None,
                 **kw: Any) -> TunedStrategy:
    return TunedStrategy(lm, prompt, answer, Method(AdapterSettings(**adapter)), name=name, **kw)
