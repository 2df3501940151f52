"""The decision summary: the report's first section, in prose. Which variant is most
accurate (or which are tied), cheapest, fastest, Pareto-optimal, best when answers must
cite, when a trained variant's build cost is repaid, which forgot least, and which to pick
when the facts change."""

from __future__ import annotations

import math

import pandas as pd

from harness.report import fmt as f
from harness.report.cost import break_even_lines, same_within, tie_reason
from harness.report.freshness import Freshness
from harness.report.freshness import decision_lines as freshness_decision
from harness.report.power import POWER, points
from harness.report.variants import Pairs, Variant, tied_with
from harness.run_folders import Run
from harness.stats import ALPHA


def about_as(best: str, values: pd.Series, costs: pd.DataFrame, fmt=None) -> str:
    """'; X within 15% of it ...' for others within the cost basis's tie margin of the best."""
    fmt = fmt or f.usd
    same = same_within(costs)
    close = [n for n in values.index if n != best
             and values[n] <= values[best] * (1 + same)]
    if not close:
        return ""
    return (f"; {', '.join(close)} within {same:.0%} of it, {tie_reason(costs)} "
            f"({', '.join(fmt(values[n]) for n in close)})")


def scoring_methods(variants: list[Variant]) -> dict[str, str]:
    """Variant -> how its choices were scored (loglik | letter), where its runs say."""
    out = {}
    for v in variants:
        methods = sorted({str(m) for m in v.values("scoring_method")})
        if methods:
            out[v.name] = "/".join(methods)
    return out


def scoring_method_lines(variants: list[Variant]) -> list[str]:
    """A warning when the variants' choices were scored by different methods: their
    accuracies then measure different things, and ranking them says so."""
    methods = scoring_methods(variants)
    if len(set(methods.values())) < 2:
        return []
    groups: dict[str, list[str]] = {}
    for name, m in methods.items():
        groups.setdefault(m, []).append(name)
    why: dict[str, list[str]] = {}  # reason -> the letter-scored variants it was given for
    for v in variants:
        if methods.get(v.name) == "letter":
            for r in dict.fromkeys(v.values("scoring_method_reason")):
                why.setdefault(str(r), []).append(v.name)
    because = "; ".join(f"{r} ({', '.join(ns)})" for r, ns in why.items())
    return [("**⚠ Choices were scored by different methods**: "
             + "; ".join(f"{m} for {', '.join(ns)}" for m, ns in sorted(groups.items()))
             + ". A log-likelihood ranking and a letter answer are different measurements, so "
               "the ranking below compares them as they are, not like for like"
             + (f". Letter because: {because}" if because else "")
             + ". To score all alike, run the sweep with answer.choice_scoring=letter.")]


def decision_lines(variants: list[Variant], pairs: Pairs, costs: pd.DataFrame, queries: int,
                   failures: list[Run], fresh: Freshness | None = None, *,
                   metric: str = "choice_accuracy", chosen: bool = False,
                   warning: str | None = None) -> list[str]:
    if not variants:
        return ["No run completed, so there is nothing to compare."]
    lines = []
    if chosen or warning:
        lines.append(f"Accuracy below is **{metric}**" + (" (report.primary_metric)" if chosen else "")
                     + (f"; ⚠ {warning}: the ranking may not hold." if warning else "."))
    lines.extend(scoring_method_lines(variants))
    top, accuracy = _accuracy_lines(variants, pairs)
    lines += accuracy + order_lines(variants, pairs)
    lines += _cost_lines(costs, top, queries)
    lines += _citation_lines(variants, pairs)
    lines.extend(break_even_lines(variants, costs))
    lines += _forgetting_lines(variants)
    if fresh is not None:
        lines.extend(freshness_decision(fresh))
    if {len(v.runs) for v in variants} == {1}:
        lines.append("Each variant ran with one seed: the intervals reflect the sampling of "
                     "test items only, not training-run variance; add seeds (seed=0,1,2) to "
                     "include it, or run the fair contest (experiment=fair), which tests each "
                     "tuned strategy's chosen config with 3 seeds and gives P(A > B).")
    if failures:
        lines.append(f"**{len(failures)} run(s) did not complete** and are left out of every "
                     "number above (see Failed runs).")
    return lines


def _accuracy_lines(variants: list[Variant], pairs: Pairs) -> tuple[list[str], list[str]]:
    """The most accurate variant, or the set tied with it; returns (that set, the lines)."""
    by = {v.name: v for v in variants}
    best = max(variants, key=lambda v: v.estimate.mean)
    tied = tied_with(best.name, pairs)
    top = [best.name] + [n for n, _ in tied]
    if tied:
        return top, _tie_lines(best, tied, pairs, by)
    if len(variants) > 1:
        runner_up = max((v for v in variants if v is not best), key=lambda v: v.estimate.mean)
        p = next(p for a, b, _, p in pairs if {a, b} == {best.name, runner_up.name})
        return top, [f"**Most accurate: {best.name}** ({f.ci(best.estimate)}); better than the "
                     f"runner-up {runner_up.name} ({runner_up.estimate.mean:.3f}) with "
                     f"Holm-adjusted p={p:.2g}."]
    return top, [f"Only one variant completed: {best.name} ({f.ci(best.estimate)})."]


RELIABLE = 0.95  # P(A > B) at or beyond this (or 1 - it): the order held under resampling


def order_lines(variants: list[Variant], pairs: Pairs) -> list[str]:
    """Whether the most accurate variant's lead holds when the training seeds and the test
    items are drawn again (P(A > B)), for each variant that ran several seeds beside it: the
    same words for a fair contest's final runs and an ordinary sweep with seed=0,1,2."""
    by = {v.name: v for v in variants}
    best = max(variants, key=lambda v: v.estimate.mean)
    lines = []
    for a, b, t, _ in pairs:
        if best.name not in (a, b) or t.superior != t.superior:
            continue
        other = b if a == best.name else a
        if len(by[a].seeds) < 2 and len(by[b].seeds) < 2:
            continue
        p = t.superior if a == best.name else 1 - t.superior
        seeds = f"{len(by[best.name].seeds)} and {len(by[other].seeds)} seeds"
        if p >= RELIABLE:
            lines.append(f"Order: {best.name} beat {other} in {p:.0%} of resamples of the test "
                         f"items and of their training seeds ({seeds}): the order held.")
        else:
            lines.append(f"**Order not stable**: {best.name} beat {other} in only {p:.0%} of "
                         f"resamples of the test items and of their training seeds ({seeds}): "
                         "no reliable order between the two (Bouthillier et al. 2021).")
    return lines


def _tie_lines(best: Variant, tied: list[tuple[str, float]], pairs: Pairs,
               by: dict[str, Variant]) -> list[str]:
    """A real tie (the difference's CI inside the equivalence margin) apart from no
    evidence either way (the set could not have seen a difference below its MDE)."""
    tests = {(b if a == best.name else a): t for a, b, t, _ in pairs if best.name in (a, b)}
    same = [(n, p) for n, p in tied if tests[n].equivalent]
    unseen = [(n, p) for n, p in tied if not tests[n].equivalent]
    lines = []
    if same:
        lines.append(f"**Accuracy: a tie.** {best.name} ({f.ci(best.estimate)}) and "
                     + ", ".join(f"{n} ({by[n].estimate.mean:.3f})" for n, _ in same)
                     + " are equivalent: the 95% interval of each difference lies inside the "
                       "equivalence margin (report.equivalence_margin).")
    if unseen:
        sized = [tests[n].mde for n, _ in unseen if tests[n].mde == tests[n].mde]
        reach = (f"this test set can only detect differences of about {points(max(sized))} or "
                 f"more ({POWER:.0%} power), so a smaller real difference would go unseen"
                 if sized else "this test set is too small to detect even the largest difference")
        lines.append(
            f"**Accuracy: no evidence of a difference, which is not a tie.** {best.name} has "
            f"the highest mean ({f.ci(best.estimate)}); its lead over "
            + ", ".join(f"{n} ({by[n].estimate.mean:.3f}, p={p:.2g})" for n, p in unseen)
            + f" is not significant at α={ALPHA} (Holm-adjusted), but {reach}. More test "
              "items would tell (Methods says how many).")
    return lines


def _cost_lines(costs: pd.DataFrame, top: list[str], queries: int) -> list[str]:
    """Cheapest (overall and among the most accurate), fastest, and the Pareto fronts."""
    lines = []
    c = costs.set_index("variant")
    priced = c[~c.total_usd.isna()]
    if not priced.empty:
        cheapest = priced.total_usd.idxmin()
        lines.append(f"**Cheapest** to build and serve {queries:,} queries: {cheapest} "
                     f"({f.usd(priced.total_usd[cheapest])}, accuracy {c.accuracy[cheapest]:.3f})"
                     + about_as(cheapest, priced.total_usd, costs) + ".")
        top_priced = priced.loc[[n for n in top if n in priced.index]]
        if not top_priced.empty and top_priced.total_usd.idxmin() != cheapest:
            n = top_priced.total_usd.idxmin()
            lines.append(f"Cheapest among the most accurate: {n} ({f.usd(priced.total_usd[n])})"
                         + about_as(n, top_priced.total_usd, costs) + ".")
    if c.p95_s.notna().any():
        lat = c.p95_s.dropna()
        fastest = lat.idxmin()
        lines.append(f"**Fastest** (p95 latency per query): {fastest} ({f.seconds(lat[fastest])})"
                     + about_as(fastest, lat, costs, f.seconds) + ".")
    if "pareto_cost" in c:
        front = [n for n in c.index if c.pareto_cost[n]]
        if front:
            others = "every other variant is less accurate or dearer than one of these" \
                if len(front) < len(c) else "none dominates another"
            lines.append("**Pareto-optimal** on accuracy vs total cost: " + ", ".join(front)
                         + f" ({others}).")
        else:
            lines.append("No Pareto front on cost: the runs carry no prices (run them with "
                         "the cost model of this version, conf/cost).")
        front_l = [n for n in c.index if c.pareto_latency[n]]
        if front_l:
            lines.append("Pareto-optimal on accuracy vs p95 latency: " + ", ".join(front_l) + ".")
    return lines


def _citation_lines(variants: list[Variant], pairs: Pairs) -> list[str]:
    citing = [v for v in variants if v.can_cite]
    if not citing:
        return []
    by = {v.name: v for v in variants}
    bc = max(citing, key=lambda v: v.estimate.mean)
    also = [n for n, _ in tied_with(bc.name, pairs) if by[n].can_cite]
    return [f"**If answers must cite their sources**: {bc.name} "
            f"(accuracy {bc.estimate.mean:.3f}, citation recall "
            f"{f.number(bc.mean('citation_recall'))})"
            + (f", not significantly better than {', '.join(also)}" if also else "")
            + ". " + (", ".join(v.name for v in variants if not v.can_cite)
                      + " cannot cite." if len(citing) < len(variants) else "")]


def _forgetting_lines(variants: list[Variant]) -> list[str]:
    tuned = [v for v in variants if v.tuned
             and not math.isnan(v.forgetting("control_perplexity_delta"))]
    if not tuned:
        return []
    least = min(tuned, key=lambda v: v.forgetting("control_perplexity_delta"))
    delta = least.forgetting("control_perplexity_delta")
    untrained = [v.name for v in variants if not v.tuned]
    return [f"**Forgetting**: of the tuned variants, {least.name} changed general-text "
            f"perplexity least ({delta:+.2f})"
            + (f"; {', '.join(untrained)} leave the model's weights unchanged."
               if untrained else ".")]
