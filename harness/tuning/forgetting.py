"""Forgetting: a control set unrelated to any task, measured before and after tuning.

- perplexity on a general text the project ships (harness/data/control/general_text.txt);
- agreement of greedy answers to general prompts (prompts.txt) with the base model's.
Reported per run as before/after values and deltas."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.models.local import LM, TextNLL
from harness.scoring import token_f1

CONTROL_DIR = Path(__file__).resolve().parent.parent / "data" / "control"


@dataclass(frozen=True)
class ControlResult:
    perplexity: float
    answers: tuple[str, ...]
    token_nll: tuple[float, ...] = ()  # per scored token, for the change's interval


BLOCK = 32  # tokens per bootstrap block: neighbouring tokens' NLLs are not independent
N_BOOT = 2000


def perplexity_change_ci(before: Sequence[float], after: Sequence[float], *, block: int = BLOCK,
                         n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the change in perplexity (after - before) on the same text: a paired
    moving-block bootstrap over the text's token NLLs (blocks of `block` tokens drawn with
    replacement, the same blocks for both models). None without per-token NLLs."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(a) != len(b) or len(a) < 2 * block:
        return None
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(a) - block + 1, size=(n_boot, -(-len(a) // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)
    deltas = np.exp(b[idx].mean(axis=1)) - np.exp(a[idx].mean(axis=1))
    low, high = np.quantile(deltas, [0.025, 0.975])
    return float(low), float(high)


def control_prompts() -> list[str]:
    lines = (CONTROL_DIR / "prompts.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


WINDOW = 512  # tokens per perplexity window


def perplexity(lm: LM, text: str, window: int = WINDOW) -> float:
    """exp(mean token NLL) over non-overlapping windows of `window` tokens."""
    return _perplexity(lm.text_nll(text, window))


def _perplexity(r: TextNLL) -> float:
    return math.exp(r.nll / max(r.tokens, 1))


def run_control(lm: LM, *, batch_size: int = 8, max_new_tokens: int = 24) -> ControlResult:
    text = (CONTROL_DIR / "general_text.txt").read_text(encoding="utf-8")
    prompts = [lm.render([{"role": "user", "content": p}]) for p in control_prompts()]
    gens = lm.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    r = lm.text_nll(text, WINDOW)  # one pass: the perplexity and each token's NLL
    return ControlResult(_perplexity(r), tuple(g.text for g in gens), tuple(r.per_token))


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
        **_delta_ci(before, after),
        "control_greedy_agreement": agree / max(len(before.answers), 1),
        "control_greedy_f1": round(sum(f1) / max(len(f1), 1), 4),
        "control_answers_before_sample": list(before.answers[:3]),
        "control_answers_after_sample": list(after.answers[:3]),
        "control_prompts": len(before.answers),
    }


def _delta_ci(before: ControlResult, after: ControlResult) -> dict[str, float]:
    ci = perplexity_change_ci(before.token_nll, after.token_nll)
    return {} if ci is None else {"control_perplexity_delta_low": round(ci[0], 4),
                                  "control_perplexity_delta_high": round(ci[1], 4)}


def measure_forgetting(base: LM, tuned: LM) -> dict[str, float | int]:
    """What tuning did to general ability: the control set run on the base model (once per
    process and model) and on the tuned one. Put the result in FitReport.forgetting."""
    return forgetting_report(base_control(base, key=base.name + base.fingerprint),
                             run_control(tuned))
