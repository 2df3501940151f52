"""Turn prompts into Predictions: choice scoring and/or greedy generation. Shared by every
strategy so all are scored the same way.

Choices are scored by one of two methods (`answer.choice_scoring`, harness.models.contract):
`loglik` ranks them by their log-likelihood after the prompt; `letter` lists them with
letters after the question and ranks the letters by the model's next-token log-probs;
`auto` takes loglik where the model's log-likelihoods pass its check (always in process;
a served model must echo prompt log-probs that match its generated ones) and letter where
they do not, and says why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.cost.work import add
from harness.errors import ConfigError
from harness.models import LETTERS, LanguageModel, Message, check_method
from harness.prompting import PromptSettings, build_messages
from harness.types import Citation, Example, Prediction, Usage

CHOICE_NORMS = ("sum", "mean")


@dataclass(frozen=True)
class AnswerSettings:
    score_choices: bool = True  # rank `choices` by log-likelihood when an example has them
    generate: bool | str = True  # also generate a free answer (EM / F1 / contains); auto: only
    # for the questions that have no choices to score (a free-form task's)
    max_new_tokens: int = 24  # generation stops earlier at a newline or end of turn
    batch_size: int = 16  # higher: faster on CPU up to ~16, more memory
    choice_norm: str = "sum"  # sum: total log p; mean: per token (favours long choices less)
    choice_scoring: str = "auto"  # loglik | letter | auto (see the module docstring)
    letter_top_k: int = 20  # letter: next tokens read (OpenAI's top_logprobs allows 20)
    letter_instruction: str = "Answer with the letter of the correct choice only."

    def __post_init__(self) -> None:
        if self.choice_norm not in CHOICE_NORMS:
            raise ConfigError(
                f"unknown choice_norm '{self.choice_norm}'; choose one of: {', '.join(CHOICE_NORMS)}"
            )
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("answer.batch_size and answer.max_new_tokens must be >= 1")
        check_method(self.choice_scoring)
        if self.letter_top_k < 1:
            raise ConfigError("answer.letter_top_k must be >= 1")
        if self.generate not in (True, False, "auto"):
            raise ConfigError(f"answer.generate must be true, false or auto, got {self.generate!r}")
        if not (self.score_choices or self.generate):
            raise ConfigError("answer.score_choices and answer.generate are both off: nothing to do")


def choice_method(lm: LanguageModel, setting: str) -> tuple[str, str]:
    """The method `setting` (loglik | letter | auto) resolves to for `lm`, and why."""
    if check_method(setting) != "auto":
        return setting, f"answer.choice_scoring={setting}"
    if not hasattr(lm, "loglik_check"):  # a model of the user's own without the check
        return "loglik", f"{type(lm).__name__} has no loglik_check: its log-likelihoods are trusted"
    check = lm.loglik_check()
    return ("loglik" if check.exact else "letter"), check.reason


def with_letters(messages: Sequence[Message], choices: Sequence[str],
                 instruction: str) -> list[Message]:
    """The conversation with the choices listed by letter after the question, then the
    instruction to answer with a letter (the letter method's prompt)."""
    if len(choices) > len(LETTERS):
        raise ConfigError(f"answer.choice_scoring=letter takes at most {len(LETTERS)} choices, "
                          f"got {len(choices)}")
    listed = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    *head, last = [dict(m) for m in messages]
    last["content"] = f"{last['content']}\n\nChoices:\n{listed}\n\n{instruction}"
    return [*head, last]


def score(lm: LanguageModel, messages: Sequence[Sequence[Message]],
          choices: Sequence[Sequence[str]], settings: AnswerSettings, *,
          progress: bool = False) -> list:
    """ChoiceScores for each conversation's choices, by the method the settings resolve to."""
    method, _ = choice_method(lm, settings.choice_scoring)
    if method == "loglik":
        return lm.score_choices([lm.render(m) for m in messages], choices,
                                batch_size=settings.batch_size, progress=progress)
    prompts = [lm.render(with_letters(m, c, settings.letter_instruction))
               for m, c in zip(messages, choices)]
    return lm.score_letters(prompts, [len(c) for c in choices], top_k=settings.letter_top_k,
                            batch_size=settings.batch_size, progress=progress)


def answer(lm: LanguageModel, examples: Sequence[Example], messages: Sequence[Sequence[Message]],
           settings: AnswerSettings, *, retrieval_s: Sequence[float] | None = None,
           retrieval_batch_s: Sequence[float] | None = None,
           retrieval_work: Sequence[dict[str, float]] | None = None,
           citations: Sequence[Sequence[Citation]] | None = None,
           progress: bool = False) -> list[Prediction]:
    n = len(examples)
    scored = [None] * n
    with_choices = [i for i, e in enumerate(examples) if e.choices]
    if settings.score_choices and with_choices:
        res = score(lm, [messages[i] for i in with_choices],
                    [examples[i].choices for i in with_choices], settings, progress=progress)
        for i, r in zip(with_choices, res):
            scored[i] = r
    gens = [None] * n
    wanted = [i for i in range(n) if settings.generate is True or not settings.score_choices
              or (settings.generate == "auto" and not examples[i].choices)]
    if settings.generate and wanted:
        out = lm.generate([lm.render(messages[i]) for i in wanted],
                          max_new_tokens=settings.max_new_tokens,
                          batch_size=settings.batch_size, progress=progress)
        for i, g in zip(wanted, out):
            gens[i] = g
    preds = []
    for i, ex in enumerate(examples):
        s, g = scored[i], gens[i]
        choice, logprobs = None, ()
        if s is not None:
            logprobs = s.logprobs
            norm = [lp / max(t, 1) for lp, t in zip(s.logprobs, s.choice_tokens)] \
                if settings.choice_norm == "mean" else list(s.logprobs)
            choice = max(range(len(norm)), key=norm.__getitem__)
        r_s = retrieval_s[i] if retrieval_s else 0.0
        r_wall = retrieval_batch_s[i] if retrieval_batch_s else r_s
        usage = Usage(
            prompt_tokens=(s.context_tokens if s else g.prompt_tokens) if (s or g) else 0,
            completion_tokens=g.completion_tokens if g else 0,
            retrieval_s=r_s,
            scoring_s=s.seconds if s else 0.0,
            generation_s=g.seconds if g else 0.0,
            latency_s=r_wall + (s.batch_seconds if s else 0.0) + (g.batch_seconds if g else 0.0),
            retrieval_latency_s=r_wall,
            work=add(add(dict(retrieval_work[i]) if retrieval_work else {},
                         s.batch_work if s else {}), g.batch_work if g else {}),
        )
        preds.append(Prediction(
            example_id=ex.id, output=g.text if g else None, choice=choice,
            choice_logprobs=tuple(round(x, 5) for x in logprobs), usage=usage,
            citations=tuple(citations[i]) if citations else (),
        ))
    return preds


def answer_with_passages(lm: LanguageModel, index: Any, examples: Sequence[Example],
                         prompt: PromptSettings, settings: AnswerSettings, *,
                         progress: bool = False) -> list[Prediction]:
    """Retrieve each question's passages from `index` (harness.retrieval.RetrievalIndex)
    within the prompt's context budget, answer with them, and cite them: what rag and
    hybrid do, with their own model."""
    got = index.passages(examples, batch_size=settings.batch_size,
                         budget_tokens=prompt.context_budget_tokens, count_tokens=lm.count_tokens)
    messages = [build_messages(prompt, ex.question, passages=ps)
                for ex, ps in zip(examples, got.passages)]
    return answer(lm, examples, messages, settings, citations=got.citations, progress=progress,
                  **got.timing())
