"""The LM contract: what strategies, scorers and the question writer ask of a model, whether
it runs in this process (harness.models.local, transformers) or behind an OpenAI-compatible
endpoint (harness.models.served: vLLM, llama.cpp, a hosted API).

Batch in, list out, in the caller's order. A prompt is what `render` returns: the text the
model continues (in-process, or a served completions endpoint), or the messages themselves
(a served chat endpoint, whose server applies its own template).

Choice scoring has two methods (`answer.choice_scoring`), offered by both implementations so
the two sides of a comparison can be scored alike:

    loglik  the exact log-likelihood of each choice after the prompt (score_choices);
            a served model needs a completions endpoint that echoes prompt log-probs
    letter  the choices are listed with letters in the prompt and the model's next-token
            log-probs of the letters are read (score_letters), from its top `top_k` tokens:
            what chat-only APIs can give (top_logprobs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from harness.errors import ConfigError

Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
Prompt = Any  # str, or a list of Message for a served chat endpoint (LanguageModel.render)

SCORING_METHODS = ("loglik", "letter", "auto")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# The score of a letter that is not among the model's top_k next tokens: far below any real
# log-probability, and the same on both sides of a comparison.
LETTER_FLOOR = -100.0


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # this item's share of its batch's wall time
    batch_seconds: float  # what a caller waited for it: its batch (in-process) or request (served)
    batch_work: dict[str, float] = dataclasses.field(default_factory=dict)  # harness.cost.work counters


@dataclass(frozen=True)
class ChoiceScores:
    logprobs: tuple[float, ...]  # per choice: sum of log p(choice tokens | context), or the
    # letter's next-token log-prob (letter method; LETTER_FLOOR when not among the top_k)
    choice_tokens: tuple[int, ...]
    context_tokens: int
    seconds: float
    batch_seconds: float
    batch_work: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class LoglikCheck:
    """Whether a model's choice log-likelihoods can be trusted (answer.choice_scoring=auto)."""
    exact: bool
    reason: str  # in words: what was compared, or why it could not be


@runtime_checkable
class LanguageModel(Protocol):
    """What every model offers (see the module docstring)."""

    name: str  # what the report calls the model
    identity: str  # what caches key its outputs by (name + weights, or endpoint model + revision)
    where: str  # "local" (weights in this process) | "served" (an endpoint)
    cache: Any  # prediction cache directory (pathlib.Path) or None

    def render(self, messages: Sequence[Message]) -> Prompt: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int = 16,
                 batch_size: int = 8, progress: bool = False) -> list[Generation]: ...

    def score_choices(self, contexts: Sequence[Prompt], choices: Sequence[Sequence[str]], *,
                      batch_size: int = 8, progress: bool = False) -> list[ChoiceScores]: ...

    def score_letters(self, prompts: Sequence[Prompt], n_choices: Sequence[int], *,
                      top_k: int = 20, batch_size: int = 8,
                      progress: bool = False) -> list[ChoiceScores]: ...

    def loglik_check(self) -> LoglikCheck: ...


def letter_logprobs(top: Mapping[str, float], n: int) -> tuple[float, ...]:
    """Per letter A.. (n of them): the highest log-prob among `top` (token text -> log-prob) of
    a token that reads as that letter once stripped of spaces ("A", " A"); LETTER_FLOOR when
    none does. Both implementations read letters through this, so they agree on the rule."""
    best = [LETTER_FLOOR] * n
    for token, lp in top.items():
        key = token.strip()
        if len(key) == 1 and key in LETTERS[:n]:
            i = LETTERS.index(key)
            best[i] = max(best[i], float(lp))
    return tuple(best)


def plain_prompt(messages: Sequence[Message]) -> str:
    """The prompt of a model without a chat template: the system line, each user turn
    followed by "Answer:", each assistant turn after it; generation continues after the
    last "Answer:"."""
    text = ""
    for m in messages:
        if m["role"] == "system":
            text += m["content"] + "\n\n"
        elif m["role"] == "user":
            text += m["content"] + "\nAnswer:"
        else:
            text += " " + m["content"] + "\n\n"
    return text


def check_method(method: str) -> str:
    if method not in SCORING_METHODS:
        raise ConfigError(f"unknown answer.choice_scoring '{method}'; choose one of: "
                          f"{', '.join(SCORING_METHODS)}")
    return method


def total_params(lm: LanguageModel) -> int:
    """Parameters of a model in this process; 0 for a served one (not known here)."""
    model = getattr(lm, "model", None)
    return sum(p.numel() for p in model.parameters()) if model is not None else 0


def require_local(lm: LanguageModel, strategy: str) -> None:
    """A strategy that changes the model's weights needs them in this process: one line,
    before any work, when the run's model is served."""
    if getattr(lm, "where", "local") != "local":
        raise ConfigError(
            f"strategy '{strategy}' trains the model's weights, but model={lm.name} is served "
            f"over HTTP ({getattr(lm, 'base_url', 'an endpoint')}): run {strategy} on a local "
            "model (model=smollm2-135m, model=hf model.name_or_path=...), or put served and "
            "local models in one sweep with per_strategy.<name>.model (docs: served models)")
