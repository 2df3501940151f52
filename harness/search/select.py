"""Which trial a search chooses (search.select), one rule for the search and its report.

    best     the top validation score; a tie goes to the cheaper trial, then the earlier
    one_se   the cheapest trial whose validation score is within one standard error of the
             best (the one-standard-error rule: Breiman et al.'s CART, 1984; glmnet's
             lambda.1se): when the validation set cannot tell trials apart, the top score is
             mostly noise, and paying for it (a config several times dearer per query) buys
             nothing that the set can show

The standard error is the best trial's, over its validation items: for a 0/1 metric
Agresti and Coull's, sqrt(p~(1-p~)/(n+4)) with p~ = (right+2)/(n+4), which stays above zero
when a trial gets every item right (the plain sqrt(p(1-p)/n) would call a perfect score on
20 items certain); for a continuous score, its standard deviation over sqrt(n). A trial's
cost: its modelled build and validation predictions (what the Tuning table shows); a trial
with no price counts as dearest."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

SELECT = ("one_se", "best")


@dataclass(frozen=True)
class Candidate:
    number: int
    value: float  # the validation primary metric
    cost_usd: float  # modelled build + validation predictions (nan: unpriced)
    se: float = math.nan  # the standard error of `value` over the validation items


@dataclass(frozen=True)
class Choice:
    number: int  # the trial the rule chose
    rule: str
    best: int  # the top validation score's trial (ties: cheaper, then earlier)
    within_noise: frozenset[int]  # trials within one standard error of the best
    se: float  # the best trial's standard error


def check_rule(rule: str) -> str:
    if rule not in SELECT:
        raise ConfigError(f"unknown search.select '{rule}'; choose one of: {', '.join(SELECT)}")
    return rule


def _cost(c: Candidate) -> float:
    return c.cost_usd if c.cost_usd == c.cost_usd else math.inf


def choose(candidates: Sequence[Candidate], rule: str) -> Choice | None:
    """The trial `rule` picks among eligible candidates (finished, scored); None: none."""
    check_rule(rule)
    if not candidates:
        return None
    top = min(candidates, key=lambda c: (-c.value, _cost(c), c.number))
    se = top.se if top.se == top.se else 0.0
    near = [c for c in candidates if c.value >= top.value - se]
    pick = top if rule == "best" else min(near, key=lambda c: (_cost(c), -c.value, c.number))
    return Choice(pick.number, rule, top.number, frozenset(c.number for c in near), se)


def item_se(run_dir: Path, metric: str) -> float:
    """The standard error of a run's mean `metric` over its items (predictions.jsonl),
    nan when it has no per-item scores."""
    from harness.run_folders import item_key

    path = run_dir / "predictions.jsonl"
    if not path.is_file():
        return math.nan
    key = item_key(metric)
    scores = []
    for line in path.read_text(encoding="utf-8").splitlines():
        v = (json.loads(line).get("scores") or {}).get(key)
        if isinstance(v, int | float):
            scores.append(float(v))
    n = len(scores)
    if n < 2:
        return math.nan
    if all(x in (0.0, 1.0) for x in scores):  # Agresti-Coull: two successes, two failures added
        p = (sum(scores) + 2) / (n + 4)
        return math.sqrt(p * (1 - p) / (n + 4))
    mean = sum(scores) / n
    return math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1) / n)
