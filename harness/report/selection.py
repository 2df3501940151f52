"""Which variant stands for each strategy in the decision summary when a sweep holds several
of one strategy, and on what data it was picked (report.select_on).

Picking the best of k variants on the test split and then reporting its test score is
optimistic (the winner's curse). So a variant's validation runs, where they exist (the same
config run with eval_split=val, or a search's trials), make the pick; otherwise the pick is
made on the test split and the summary says by how much that can overstate the chosen one:
up to E[max of k standard normals] x the variants' standard error, which is what picking the
best of k equally good variants gains by chance.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from harness.errors import UserError
from harness.report.expected_best import expected_max_normal
from harness.report.power import points
from harness.report.variants import Variant
from harness.run_folders import Run

SELECT_ON = ("auto", "val", "test", "none")


@dataclass(frozen=True)
class Pick:
    strategy: str
    chosen: str  # the variant that stands for the strategy
    among: tuple[str, ...]  # every variant of the strategy
    on: str  # val | test | search | only
    scores: dict[str, float]  # what the pick was made on, per variant
    optimism: float = math.nan  # a test-split pick: how much it can overstate, at most

    def line(self) -> str | None:
        if self.on in ("only", "search"):
            return None
        others = ", ".join(f"{n} {self.scores[n]:.3f}" for n in self.among if n != self.chosen)
        if self.on == "val":
            return (f"{self.strategy}: {self.chosen} stands for it, picked among "
                    f"{len(self.among)} variants on their validation runs "
                    f"({self.scores[self.chosen]:.3f}; {others}).")
        return (f"**{self.strategy}: {self.chosen} was picked among {len(self.among)} variants "
                f"on the test split itself** ({self.scores[self.chosen]:.3f}; {others}): with "
                "no validation runs to pick on, its test score can overstate what the pick "
                f"delivers by up to about {points(self.optimism)} (the best of "
                f"{len(self.among)} equally good variants at this test set's standard error). "
                "Run the variants with eval_split=val as well (report.select_on=val), or "
                "search them fairly (experiment=fair).")


def val_scores(variants: list[Variant], runs: list[Run]) -> dict[str, float]:
    """Variant -> the mean primary score of the validation runs that share its config."""
    by_sig: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r.on_val and r.complete:
            value = r.metrics.get(r.primary_metric)
            if isinstance(value, int | float):
                by_sig[r.signature].append(float(value))
    out = {}
    for v in variants:
        found = [x for sig in {r.signature for r in v.runs} for x in by_sig.get(sig, [])]
        if found:
            out[v.name] = float(np.mean(found))
    return out


def pick_representatives(variants: list[Variant], runs: list[Run],
                         select_on: str = "auto", searched: frozenset[str] = frozenset()
                         ) -> list[Pick]:
    """One Pick per strategy when the sweep compares several strategies (a sweep of one
    strategy's variants compares them all). `searched`: variants a search chose."""
    if select_on not in SELECT_ON:
        raise UserError(f"report.select_on must be one of {', '.join(SELECT_ON)}, got '{select_on}'")
    groups: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        groups[v.strategy].append(v)
    val = val_scores(variants, runs) if select_on in ("auto", "val") else {}
    picks = []
    for strategy, group in groups.items():
        names = tuple(v.name for v in group)
        test = {v.name: v.estimate.mean for v in group}
        if len(group) == 1 or select_on == "none" or len(groups) == 1:  # one strategy: its
            # variants are the comparison (paired tests, Holm), nothing stands for another
            on = "search" if names[0] in searched else "only"
            picks += [Pick(strategy, v.name, (v.name,), on, test) for v in group]
        elif all(n in val for n in names):
            scores = {n: val[n] for n in names}
            picks.append(Pick(strategy, _best(scores, names), names, "val", scores))
        else:
            se = float(np.median([(v.estimate.high - v.estimate.low) / 3.92 for v in group]))
            picks.append(Pick(strategy, _best(test, names), names, "test", test,
                              optimism=expected_max_normal(len(group)) * se))
    return picks


def _best(scores: dict[str, float], names: tuple[str, ...]) -> str:
    """The highest score; a tie goes to the first in the report's order."""
    return max(names, key=lambda n: (scores[n], -names.index(n)))
