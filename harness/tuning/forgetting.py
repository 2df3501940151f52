"""Forgetting: a control set unrelated to any task, measured before and after tuning.

- perplexity on a general text the project ships (harness/data/control/general_text.txt);
- agreement of greedy answers to general prompts (prompts.txt) with the base model's.
Reported per run as before/after values and deltas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.models.local import LM
from harness.scoring import token_f1

CONTROL_DIR = Path(__file__).resolve().parent.parent / "data" / "control"


@dataclass(frozen=True)
class ControlResult:
    perplexity: float
    answers: tuple[str, ...]


def control_prompts() -> list[str]:
    lines = (CONTROL_DIR / "prompts.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def perplexity(lm: LM, text: str, window: int = 512) -> float:
    """exp(mean token NLL) over non-overlapping windows of `window` tokens."""
    r = lm.text_nll(text, window)
    return math.exp(r.nll / max(r.tokens, 1))


def run_control(lm: LM, *, batch_size: int = 8, max_new_tokens: int = 24) -> ControlResult:
    text = (CONTROL_DIR / "general_text.txt").read_text(encoding="utf-8")
    prompts = [lm.render([{"role": "user", "content": p}]) for p in control_prompts()]
    gens = lm.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return ControlResult(perplexity(lm, text), tuple(g.text for g in gens))


_BASE: dict[str, ControlResult] = {}


def base_control(lm: LM, key: str, **kw) -> ControlResult:
    """The untuned model's control result, computed once per process and model."""
    if key not in _BASE:
        _BASE[key] = run_control(lm, **kw)
    return _BASE[key]


def forgetting_report(before: ControlResult, after: ControlResult) -> dict[str, float | int]:
    """Exact agreement is strict (any changed word counts); token F1 against the base
    model's answer shows how far the answers moved."""
    agree = sum(a == b for a, b in zip(before.answers, after.answers))
    f1 = [token_f1(a, [b]) if b.strip() else float(a == b)
          for a, b in zip(after.answers, before.answers)]
    return {
        "control_perplexity_before": round(before.perplexity, 4),
        "control_perplexity_after": round(after.perplexity, 4),
        "control_perplexity_delta": round(after.perplexity - before.perplexity, 4),
        "control_greedy_agreement": agree / max(len(before.answers), 1),
        "control_greedy_f1": round(sum(f1) / max(len(f1), 1), 4),
        "control_answers_before_sample": list(before.answers[:3]),
        "control_answers_after_sample": list(after.answers[:3]),
        "control_prompts": len(before.answers),
    }


def measure_forgetting(base: LM, tuned: LM) -> dict[str, float | int]:
    """What tuning did to general ability: the control set run on the base model (once per
    process and model) and on the tuned one. Put the result in FitReport.forgetting."""
    return forgetting_report(base_control(base, key=base.name + base.fingerprint),
                             run_control(tuned))
