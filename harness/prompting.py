"""One prompt builder for every strategy, so all of them see the same wording and the
same context budget (a fairness rule). Strategies only decide what goes in it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.models.contract import Message


@dataclass(frozen=True)
class PromptSettings:
    system: str = "You answer questions about facts with a short phrase."
    instruction: str = "Answer with the exact name, year or phrase only."
    # Retrieved passages are added in rank order until this many tokens are used; a
    # passage that does not fit whole is cut at a word boundary and the rest dropped.
    context_budget_tokens: int = 512
    passage_header: str = "Passages:"
    question_prefix: str = "Question:"

    def __post_init__(self) -> None:
        if self.context_budget_tokens < 1:
            raise ConfigError(
                f"prompt.context_budget_tokens must be >= 1, got {self.context_budget_tokens}"
            )


@dataclass(frozen=True)
class Passage:
    source_id: str
    text: str
    score: float


def fit_passages(passages: Sequence[Passage], budget_tokens: int,
                 count_tokens: Callable[[str], int]) -> list[Passage]:
    """Passages in rank order that fit the token budget (the last may be cut short)."""
    kept, used = [], 0
    for p in passages:
        n = count_tokens(p.text)
        if used + n <= budget_tokens:
            kept.append(p)
            used += n
            continue
        room = budget_tokens - used
        words = p.text.split()
        words = words[: len(words) * room // max(n, 1)]  # proportional first guess
        while words and count_tokens(" ".join(words)) > room:
            words = words[:-4]
        if words:
            kept.append(Passage(p.source_id, " ".join(words) + " ...", p.score))
        break
    return kept


def build_messages(settings: PromptSettings, question: str, *,
                   passages: Sequence[Passage] = (),
                   shots: Sequence[tuple[str, str]] = ()) -> list[Message]:
    """System turn, then few-shot (question, answer) turns, then the question with its
    numbered passages."""
    messages: list[Message] = []
    if settings.system:
        messages.append({"role": "system", "content": settings.system})
    for q, a in shots:
        messages.append({"role": "user", "content": _user_turn(settings, q, ())})
        messages.append({"role": "assistant", "content": a})
    messages.append({"role": "user", "content": _user_turn(settings, question, passages)})
    return messages


def _user_turn(settings: PromptSettings, question: str, passages: Sequence[Passage]) -> str:
    parts = []
    if passages:
        numbered = "\n".join(f"[{i}] {p.text}" for i, p in enumerate(passages, start=1))
        parts.append(f"{settings.passage_header}\n{numbered}")
    if settings.instruction:
        parts.append(settings.instruction)
    parts.append(f"{settings.question_prefix} {question}")
    return "\n\n".join(parts)
