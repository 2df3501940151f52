"""Learning against forgetting: each tuning method's frontier of test accuracy against the
change in control-text perplexity, over the training points a sweep ran (learning rates,
epochs), and the methods compared at matched accuracy.

"LoRA forgets less" holds only at matched learning (Biderman et al. 2024): a method trained
harder learns more and forgets more, so two methods at one learning rate each sit at
different places on their curves. A method here is a strategy with everything but its
training knobs (strategy.train.*, strategy.data.*) fixed; its points are its variants that
measured forgetting. The section appears when some method has two or more points.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report import fmt as f
from harness.report.tables import Table
from harness.report.variants import Variant
from harness.run_folders import short_label, varying_keys
from harness.stats import Estimate

TRAINING_KEYS = ("strategy.train.", "strategy.data.")  # what moves a point along a frontier
GRID = 41  # accuracies at which two frontiers are compared across their shared range


@dataclass(frozen=True)
class Point:
    variant: str
    method: str
    setting: str  # the training values that differ within the method ('train.lr_scale=0.3')
    accuracy: Estimate
    delta: float  # control perplexity after - before
    low: float  # its 95% interval (nan for runs recorded before it had one)
    high: float
    pareto: bool = False  # no point of its method is as accurate and forgets less


@dataclass
class Frontier:
    methods: dict[str, list[Point]]  # method -> its points, least forgetting first
    lines: list[str]  # the matched-accuracy comparisons, for the decision summary
    metric: str


def _measured(v: Variant) -> bool:
    return (v.tuned and v.measured_forgetting and v.estimate.n_items > 0
            and not math.isnan(v.forgetting("control_perplexity_delta")))


def _points(variants: list[Variant]) -> dict[str, list[Point]]:
    by_strategy: dict[str, list[Variant]] = {}
    for v in variants:
        if _measured(v):
            by_strategy.setdefault(v.strategy, []).append(v)
    methods: dict[str, list[Point]] = {}
    for strategy, group in by_strategy.items():
        keys = varying_keys([r for v in group for r in v.runs])
        fixed = [k for k in keys if not k.startswith(TRAINING_KEYS)]
        moving = [k for k in keys if k.startswith(TRAINING_KEYS)]
        for v in group:
            config = v.runs[0].config
            parts = [short_label(k, config.get(k)) for k in fixed]
            method = f"{strategy} ({', '.join(parts)})" if parts else strategy
            setting = ", ".join(short_label(k, config.get(k)) for k in moving) or v.name
            methods.setdefault(method, []).append(Point(
                v.name, method, setting, v.estimate, v.forgetting("control_perplexity_delta"),
                v.forgetting("control_perplexity_delta_low"),
                v.forgetting("control_perplexity_delta_high")))
    return {m: _mark_pareto(pts) for m, pts in methods.items()}


def _mark_pareto(points: list[Point]) -> list[Point]:
    def dominated(p: Point) -> bool:
        return any(q.accuracy.mean >= p.accuracy.mean and q.delta <= p.delta
                   and (q.accuracy.mean > p.accuracy.mean or q.delta < p.delta) for q in points)
    marked = [Point(**{**p.__dict__, "pareto": not dominated(p)}) for p in points]
    return sorted(marked, key=lambda p: (p.delta, -p.accuracy.mean))


def _front(points: list[Point]) -> list[Point]:
    """The Pareto points by accuracy, one per accuracy: along them more accuracy costs
    more forgetting, so forgetting can be read off at any accuracy between them."""
    front: dict[float, Point] = {}
    for p in points:
        if p.pareto and p.accuracy.mean not in front:
            front[p.accuracy.mean] = p
    return [front[a] for a in sorted(front)]


def _at(front: list[Point], acc: float) -> tuple[float, float, float]:
    """Forgetting (and its interval's ends) at accuracy `acc`, linear between the points."""
    xs = [p.accuracy.mean for p in front]
    return tuple(float(np.interp(acc, xs, [getattr(p, a) for p in front]))  # type: ignore[return-value]
                 for a in ("delta", "low", "high"))


def compare(a: str, pa: list[Point], b: str, pb: list[Point], metric: str) -> str:
    """One sentence: which of two methods forgets less at matched accuracy, and whether the
    difference lies outside both intervals."""
    fa, fb = _front(pa), _front(pb)
    ra = (fa[0].accuracy.mean, fa[-1].accuracy.mean)
    rb = (fb[0].accuracy.mean, fb[-1].accuracy.mean)
    lo, hi = max(ra[0], rb[0]), min(ra[1], rb[1])
    head = f"**Learning vs forgetting** ({a} against {b}): "
    if lo > hi:
        low_m, high_m = (a, b) if ra[1] < rb[0] else (b, a)
        return (head + f"their frontiers do not reach a common {metric} ({a}: "
                f"{ra[0]:.3f}–{ra[1]:.3f}; {b}: {rb[0]:.3f}–{rb[1]:.3f}), so this sweep "
                f"cannot compare them at matched accuracy: {high_m}'s Pareto points are all more "
                f"accurate than {low_m}'s. Widen the rates "
                "(strategy.train.lr_scale) until their accuracies overlap.")
    grid = np.linspace(lo, hi, GRID)
    diff = np.array([_at(fa, x)[0] - _at(fb, x)[0] for x in grid])
    mid = (lo + hi) / 2
    da, db = _at(fa, mid), _at(fb, mid)
    less, more = ((a, da), (b, db)) if da[0] <= db[0] else ((b, db), (a, da))
    apart = not (math.isnan(da[1]) or math.isnan(db[1])) and (da[2] < db[1] or db[2] < da[1])
    where = (f"at {metric} {lo:.3f}" if lo == hi else
             f"at {metric} {mid:.3f}, the middle of the range both frontiers reach "
             f"({lo:.3f}–{hi:.3f})")
    verdict = ("the intervals do not overlap" if apart else
               "the intervals overlap, so this sweep does not tell them apart there"
               if not math.isnan(da[1]) and not math.isnan(db[1]) else "no interval recorded")
    if lo == hi or (diff <= 0).all() or (diff >= 0).all():
        across = "" if lo == hi else f"; {less[0]} forgets less across that whole range"
    else:
        k = int(np.nonzero(np.diff(np.sign(diff)))[0][0])  # the first change, linear in between
        flips = grid[k] + (grid[k + 1] - grid[k]) * diff[k] / (diff[k] - diff[k + 1])
        across = (f"; which forgets less depends on the accuracy (the order changes near "
                  f"{flips:.3f})")
    return (head + f"{where}, {less[0]} forgets less: control perplexity change "
            f"{f.signed_ci(*less[1])} against {more[0]}'s {f.signed_ci(*more[1])}; {verdict}"
            + across + ".")


def frontier_data(variants: list[Variant], metric: str) -> Frontier | None:
    """The frontier of every method with measured forgetting, when some method has two or
    more training points; None otherwise."""
    methods = _points(variants)
    if not any(len(pts) >= 2 for pts in methods.values()):
        return None
    swept = [m for m, pts in methods.items() if len(pts) >= 2]
    lines = [compare(a, methods[a], b, methods[b], metric)
             for a, b in itertools.combinations(swept, 2)]
    return Frontier(methods, lines, metric)


def frontier_table(fr: Frontier) -> Table:
    rows = [{"method": p.method, "training": p.setting, f"{fr.metric} [95% CI]": f.ci(p.accuracy),
             "control perplexity change [95% CI]": f.signed_ci(p.delta, p.low, p.high),
             "Pareto": "yes" if p.pareto else "no", "variant": p.variant}
            for pts in fr.methods.values() for p in pts]
    return Table("frontier", "Learning against forgetting", pd.DataFrame(rows),
                 "Each tuned variant as a point: test accuracy against the change in "
                 "perplexity on the shipped control text (see Forgetting). A method is a "
                 "strategy with its training knobs (strategy.train.*, strategy.data.*) left to "
                 "vary; 'Pareto': no point of the same method is at least as accurate and "
                 "forgets less. Methods are compared at matched accuracy along their Pareto "
                 "points (linear between swept points, intervals too), matched on the "
                 "accuracy estimates; the accuracy intervals are in the plot.")
