"""The Tuning section of a search's report (experiment=fair): each strategy's trials on the
validation split, the config it chose, that config's score on the test split (its drop from
validation to test), what tuning cost, and the expected best validation score against the
number of trials and their cost (harness.report.expected_best). Read from the run
directories alone: a trial's config.yaml says search.phase/study/trial, its metrics.json
what it scored and cost."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report import fmt as f
from harness.report.expected_best import Curve, budget_lines
from harness.report.tables import Table
from harness.report.variants import Variant
from harness.run_folders import BARE_KEYS, Run, short_label, varying_keys
from harness.search.outcome import Outcome
from harness.search.select import Candidate, Choice, choose, item_se


@dataclass
class Trial:
    run: Run
    number: int
    value: float | None  # the validation primary metric (None: failed)
    cost_usd: float
    status: str  # complete | pruned | failed
    config: str = ""  # the searched values, as a label

    @property
    def eligible(self) -> bool:
        """Could be chosen: finished its training and has a score."""
        return self.status == "complete" and self.value is not None


@dataclass
class StudyResult:
    study: str  # the strategy as named on the command line
    trials: list[Trial]
    final: Run | None  # the chosen trial on the test split
    variant: str | None  # the final's variant name in the report
    curve: Curve | None = None
    metric: str = ""
    val_items: int = 0
    sampler: str = ""
    chosen: Trial | None = field(default=None)
    rule: str = ""  # search.select: one_se | best
    choice: Choice | None = None  # what the rule saw: the best trial, those within its noise

    @property
    def tune_usd(self) -> float:
        """Every trial's modelled cost (build + validation predictions): what the search for
        this strategy cost, the chosen config's own training included."""
        known = [t.cost_usd for t in self.trials if not math.isnan(t.cost_usd)]
        return float(sum(known)) if known else math.nan


def _trial(r: Run) -> Trial:
    o = Outcome.from_metrics(r.metrics)  # the search's own reading of a trial
    return Trial(r, int(r.search("trial") or 0), o.value, o.cost_usd, o.status)


def tuning_data(runs: list[Run], variants: list[Variant]) -> list[StudyResult]:
    """One StudyResult per searched strategy, in the variants' order."""
    studies: dict[str, StudyResult] = {}
    variant_of = {id(r): v.name for v in variants for r in v.runs}
    for r in runs:
        study = r.search("study")
        if study is None or r.search("phase") is None:
            continue
        s = studies.setdefault(str(study), StudyResult(str(study), [], None, None))
        if r.search("phase") == "final":
            s.final, s.variant = r, variant_of.get(id(r))
        else:
            s.trials.append(_trial(r))
    for s in studies.values():
        _settle(s)
    order = {v.name: i for i, v in enumerate(variants)}
    return sorted(studies.values(), key=lambda s: (order.get(s.variant or "", len(order)), s.study))


def _settle(s: StudyResult) -> None:
    """Labels, the chosen trial, the validation items and the expected-best curve."""
    s.trials.sort(key=lambda t: t.number)
    keys = varying_keys([t.run for t in s.trials])
    for t in s.trials:
        t.config = ", ".join(short_label(k, t.run.config.get(k)) for k in keys
                             if not (k in BARE_KEYS and t.run.config.get(k) is None)) \
            or "(one config)"
    chosen = s.final.search("trial") if s.final is not None else None
    s.chosen = next((t for t in s.trials if t.number == chosen), None)
    done = [t for t in s.trials if t.run.complete]
    if done:
        m = done[0].run.metrics
        s.metric, s.val_items = str(m.get("primary_metric") or ""), int(m.get("n_examples") or 0)
    s.sampler = str(next((t.run.config.get("search.sampler") for t in s.trials), "") or "")
    # searches run before search.select existed took the top score
    s.rule = str(next((t.run.config.get("search.select") for t in s.trials), "") or "best")
    s.choice = choose([Candidate(t.number, t.value, t.cost_usd, item_se(t.run.path, s.metric))
                       for t in s.trials if t.eligible], s.rule)
    eligible = [t.value for t in s.trials if t.eligible]
    if eligible:  # a pruned trial counts as the worst eligible one (its pruner judged it so)
        floor = min(eligible)
        scored = [t for t in s.trials if t.eligible or t.status == "pruned"]
        values = [t.value if t.eligible else floor for t in scored]
        s.curve = Curve.of(s.study, values, [t.cost_usd for t in scored])


def trials_table(results: list[StudyResult]) -> Table:
    rows = []
    for s in results:
        for t in s.trials:
            near = s.choice is not None and t.number in s.choice.within_noise
            rows.append({"strategy": s.study, "trial": t.number, "config": t.config,
                         f"validation {s.metric}": f.number(t.value),
                         "within 1 SE of the best": "✓" if near else "",
                         "modelled cost": f.usd(t.cost_usd),
                         "status": _status(t), "chosen": "✓" if t is s.chosen else ""})
    return Table("trials", "Tuning: every trial (validation split)", pd.DataFrame(rows),
                 "Each trial is one draw from its strategy's search space "
                 "(conf/search/<strategy>.yaml), fitted and scored on the validation split "
                 "only. Cost: the trial's modelled build and validation predictions at the "
                 "run's price. Within 1 SE: the trial's score lies within one standard error "
                 "(over the validation items) of the best score: the validation set cannot tell "
                 "it from the best. search.select=one_se chooses the cheapest of those (the "
                 "one-standard-error rule, Breiman et al. 1984), best the top score. A pruned "
                 "trial stopped training early (search.pruner) and is never chosen; a failed "
                 "one is rerun when the search is invoked again.")


def _status(t: Trial) -> str:
    if t.status == "pruned":
        epoch = (t.run.metrics.get("search") or {}).get("pruned_at_epoch")
        return f"pruned at epoch {epoch:g}" if isinstance(epoch, int | float) else "pruned"
    return t.status


def summary_table(results: list[StudyResult], variants: list[Variant]) -> Table:
    by = {v.name: v for v in variants}
    rows = []
    for s in results:
        v = by.get(s.variant or "")
        test = v.estimate if v else None
        val = s.chosen.value if s.chosen else None
        rows.append({
            "strategy": s.study, "trials": len(s.trials),
            "validation items": s.val_items or f.NA,
            "chosen config": s.chosen.config if s.chosen else f.NA,
            f"validation {s.metric}": f.number(val),
            "test [95% CI]": f.ci(test) if test else f.NA,
            "drop, validation to test": f.signed(val - test.mean) if test and val is not None
            else f.NA,
            "to tune": f.usd(s.tune_usd),
            f"expected best of {len(s.trials)}": f.number(s.curve.at_budget) if s.curve else f.NA,
        })
    return Table("tuning", "Tuning", pd.DataFrame(rows),
                 "Each strategy searched its own space with the same number of trials (unless "
                 "search.budget_usd stopped it sooner), each scored on the validation split; "
                 "the trial search.select chose (one_se: the cheapest within one standard error "
                 "of the best; best: the top score, ties to the cheaper) was then scored on the "
                 "test split, reusing what the trial fitted, with search.final_seeds training "
                 "seeds for a strategy that trains. A drop from validation to test is expected: "
                 "the best of several noisy validation scores is optimistic (the winner's "
                 "curse), and the test items differ. 'To tune': every trial's modelled cost. "
                 "'Expected best of N': the expected best validation score of N random trials "
                 "(Dodge et al. 2019), which the plot draws against trials and cost.")


def selection_lines(results: list[StudyResult]) -> list[str]:
    """Where the rule's pick differs from the top validation score: both, and why."""
    lines = []
    for s in results:
        c = s.choice
        if c is None or c.number == c.best:
            continue
        top = next(t for t in s.trials if t.number == c.best)
        pick = next(t for t in s.trials if t.number == c.number)
        lines.append(
            f"{s.study}: the top validation score was trial {top.number}'s ({top.value:.3f}, "
            f"{f.usd(top.cost_usd)} to try), but {len(c.within_noise)} trials lie within one "
            f"standard error ({c.se:.3f}) of it, which {s.val_items} validation items cannot "
            f"tell apart; search.select={s.rule} chose the cheapest, trial {pick.number} "
            f"({pick.value:.3f}, {f.usd(pick.cost_usd)}). With search.select=best it would "
            f"have been trial {top.number}.")
    return lines


def method_lines(results: list[StudyResult]) -> list[str]:
    """The Methods section's line on how a search chose its trials."""
    rules = sorted({s.rule for s in results if s.rule})
    if not rules:
        return []
    return ["Selection (search.select=" + "/".join(rules) + "): one_se tests the cheapest trial "
            "whose validation score lies within one standard error of the best (the "
            "one-standard-error rule of Breiman et al. 1984, CART; glmnet's lambda.1se), the "
            "standard error over the validation items (Agresti-Coull for a yes/no metric); "
            "best tests the top score. Each chosen config of a strategy that trains is tested "
            "with search.final_seeds training seeds."]


def contest_line(results: list[StudyResult]) -> list[str]:
    """The decision summary's first line for a search: the budget each strategy had."""
    if not results:
        return []
    counts = sorted({len(s.trials) for s in results})
    items = sorted({s.val_items for s in results if s.val_items})
    tried = (f"each strategy was tuned with {counts[0]} trials" if len(counts) == 1 else
             "the strategies were tuned with " + ", ".join(f"{s.study} {len(s.trials)}"
                                                          for s in results) + " trials")
    rules = sorted({s.rule for s in results if s.rule})
    return [f"**A fair contest**: {tried} on {', '.join(map(str, items)) or f.NA} validation "
            f"items ({results[0].sampler or 'random'} sampler; chosen by "
            f"{'/'.join(rules) or 'best'}); the ranking below is of each one's chosen "
            "configuration, scored on the test split."] + selection_lines(results)


def cost_lines(results: list[StudyResult], costs: pd.DataFrame) -> list[str]:
    """What tuning cost against a retrain, whether more trials would likely change the
    ranking, and which strategies have no test run."""
    if not results:
        return []
    c = costs.set_index("variant") if not costs.empty else costs
    parts = []
    for s in results:
        retrain = c.loc[s.variant, "retrain_usd"] if s.variant in getattr(c, "index", []) \
            else math.nan
        parts.append(f"{s.study}: {f.usd(s.tune_usd)} to tune ({len(s.trials)} trials), "
                     f"{f.usd(retrain)} to retrain when the data changes")
    lines = ["Tuning cost, counted in each build cost and break-even: " + "; ".join(parts) + "."]
    lines += budget_lines([s.curve for s in results if s.curve is not None])
    missing = [s.study for s in results if s.final is None]
    if missing:
        lines.append(f"**No test run for {', '.join(missing)}**: no trial completed, or the "
                     "search was stopped before its test runs (invoke it again to finish).")
    return lines


def tuning_usd(results: list[StudyResult]) -> dict[str, float]:
    """variant -> what its search cost (the report adds it to the variant's build cost)."""
    return {s.variant: s.tune_usd for s in results if s.variant and not np.isnan(s.tune_usd)}
