"""An LLM judge: a model grades each answer against the gold answer(s) with a versioned
rubric (conf/judge_rubric/), as correct, partly correct or wrong.

The grade is decided by the judge model's scores of the labels: the log-likelihood of each
label's words as the continuation of the rubric prompt (mean per token), or, where the
judge's log-likelihoods cannot be trusted (a served model without echo), its next-token
log-prob of each label's letter (answer.choice_scoring); the most likely label wins, so a
grade is never unparsable. By default each label's score on a content-free prompt is
subtracted first (contextual calibration), so a model that says "correct" to anything does
not grade everything correct. The calls go through harness.models, so they are batched and
cached like every other model call; their seconds are the run's evaluation cost, kept apart
from the strategy's cost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.answering import AnswerSettings, score
from harness.errors import ConfigError
from harness.models import LanguageModel
from harness.types import Example

GRADES = ("correct", "partly", "wrong")
GRADE_SCORE = {"correct": 1.0, "partly": 0.5, "wrong": 0.0}


@dataclass(frozen=True)
class Rubric:
    version: str
    system: str
    template: str  # with {question}, {gold}, {answer}
    labels: dict[str, str]  # grade -> label words
    # Subtract each label's score on a content-free prompt (every field "N/A") before the
    # grade is picked: contextual calibration (Zhao et al., 2021, "Calibrate before use"),
    # which removes a model's preference for one label regardless of the answer.
    calibrate: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Rubric:
        missing = [k for k in ("version", "system", "template", "labels") if k not in cfg]
        if missing:
            raise ConfigError(f"judge_rubric: missing {', '.join(missing)}")
        labels = dict(cfg["labels"] or {})
        if sorted(labels) != sorted(GRADES) or not all(str(v).strip() for v in labels.values()):
            raise ConfigError(f"judge_rubric.labels must give words for each of {', '.join(GRADES)}"
                              f", got {sorted(labels)}")
        try:
            str(cfg["template"]).format(question="", gold="", answer="")
        except (KeyError, IndexError) as e:
            raise ConfigError(f"judge_rubric.template: unknown field {e}; it may use {{question}}, "
                              "{gold} and {answer}") from None
        return cls(str(cfg["version"]), str(cfg["system"]), str(cfg["template"]),
                   {k: str(v) for k, v in labels.items()}, bool(cfg.get("calibrate", True)))

    @property
    def hash(self) -> str:
        text = json.dumps([self.system, self.template, [self.labels[g] for g in GRADES],
                           self.calibrate])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Grade:
    grade: str  # correct | partly | wrong
    probs: tuple[float, float, float]  # softmax over the labels' mean log-probabilities, GRADES order
    seconds: float  # this item's share of its batch's scoring time (0: not asked)

    def scores(self) -> dict[str, Any]:
        return {"judge_grade": self.grade, "judge_correct": float(self.grade == "correct"),
                "judge_score": GRADE_SCORE[self.grade],
                "judge_probs": [round(p, 4) for p in self.probs]}


def grade_from_logprobs(logprobs: Sequence[float], tokens: Sequence[int],
                        prior: Sequence[float] | None = None) -> tuple[str, tuple]:
    """The grade with the highest mean log-probability per token (less the content-free
    `prior` means, when given), and the softmax of those scores (GRADES order)."""
    means = [lp / max(t, 1) for lp, t in zip(logprobs, tokens)]
    if prior is not None:
        means = [m - p for m, p in zip(means, prior)]
    top = max(means)
    exp = [math.exp(m - top) for m in means]
    z = sum(exp)
    return GRADES[means.index(top)], tuple(e / z for e in exp)


def judge(lm: LanguageModel, rubric: Rubric, examples: Sequence[Example], outputs: Sequence[str | None], *,
          batch_size: int = 8, progress: bool = False,
          answer: AnswerSettings | None = None) -> list[Grade | None]:
    """One grade per item; None where there is no output (generation off). An empty output
    is graded wrong without asking the model. The labels are scored by the method
    `answer.choice_scoring` resolves to for the judge model (loglik: the label words;
    letter: the labels listed by letter)."""
    asked = [i for i, o in enumerate(outputs) if o and o.strip()]
    def conversation(question: str, gold: str, answer: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": rubric.system},
                {"role": "user", "content": rubric.template.format(
                    question=question, gold=gold, answer=answer)}]

    chats = [conversation(examples[i].question, " / ".join(examples[i].answers),
                          outputs[i].strip()) for i in asked]
    if rubric.calibrate and chats:
        chats.append(conversation("N/A", "N/A", "N/A"))  # the content-free prompt, scored last
    labels = [rubric.labels[g] for g in GRADES]
    settings = dataclasses.replace(answer or AnswerSettings(), batch_size=batch_size)
    scored = score(lm, chats, [labels] * len(chats), settings, progress=progress) if chats else []
    prior = None
    if rubric.calibrate and scored:
        free = scored.pop()
        prior = [lp / max(t, 1) for lp, t in zip(free.logprobs, free.choice_tokens)]
    grades: list[Grade | None] = [None if o is None else Grade("wrong", (0.0, 0.0, 1.0), 0.0)
                                  for o in outputs]
    for i, s in zip(asked, scored):
        grade, probs = grade_from_logprobs(s.logprobs, s.choice_tokens, prior)
        grades[i] = Grade(grade, probs, s.seconds)
    return grades
