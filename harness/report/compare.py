"""`harness-report --compare OLD NEW`: what changed between two sweeps.

Variants are matched by their label. On the items both answered, each matched variant gets
the change in its primary metric with a paired test (McNemar's exact test on one seed of
yes/no outcomes, else the paired bootstrap), Holm-adjusted over the variants, with the
smallest change the items could detect; and the change in cost, p95 latency and
forgetting. Items that flipped (right to wrong, wrong to right) are listed with their
questions and answers, and compare.html's item explorer shows every item with both sweeps'
answers side by side (#items/changed: the items a variant flipped on). Whether the decision
changed is read from both sweeps' reports.
When the sweeps do not share a task, a split or any items, it says so and shows what can
still be set side by side (each sweep's own estimate; no paired test).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.report import fmt as f
from harness.report.build import Report, build_report
from harness.report.items import View
from harness.report.power import EQUIVALENCE, with_power
from harness.report.tables import Table
from harness.report.variants import Variant, tied_with
from harness.run_folders import IGNORED_KEYS, Run, read_runs, short_label
from harness.stats import ALPHA, PairedTest, holm, paired_test

MAX_FLIPS = 15  # items listed per variant and direction (all are counted)
METHODS = [
    "Matching: variants are matched by their label, which each sweep's report derives from what "
    "varies inside that sweep; a variant in one sweep only is listed, not compared.",
    "Paired tests, new minus old on the items both sweeps answered: McNemar's exact test when "
    "each side is one seed of yes/no outcomes, else the paired bootstrap over items (5,000 "
    f"resamples); the interval is the paired bootstrap's; p-values Holm-adjusted over the "
    f"matched variants; α = {ALPHA}.",
    "Detectable: the smallest change the shared items find with 80% power at α = 0.05 "
    "(McNemar: the exact test's power at the observed share of flipped items; bootstrap: 2.8 × "
    "its standard error).",
    "Cost and latency: each sweep's own report (its cost basis and prices).",
]


@dataclass
class Matched:
    name: str
    old: Variant
    new: Variant
    shared: list[str]  # item ids both answered
    test: PairedTest | None  # new - old on the shared items (None: no shared items)
    p_adjusted: float = math.nan


def match(old: Report, new: Report) -> list[Matched]:
    by_name = {v.name: v for v in old.variants}
    out = []
    for v in new.variants:
        if v.name not in by_name:
            continue
        o = by_name[v.name]
        shared = sorted(set(o.item_ids) & set(v.item_ids))
        test = (with_power(paired_test(v.outcomes_on(shared), o.outcomes_on(shared)), EQUIVALENCE)
                if shared else None)
        out.append(Matched(v.name, o, v, shared, test))
    tested = [m for m in out if m.test is not None]
    for m, p in zip(tested, holm([m.test.p_value for m in tested]) if tested else []):
        m.p_adjusted = p
    return out


def _config_changes(old: Variant, new: Variant) -> list[str]:
    """The config values that differ between the two variants' runs ('train.epochs: 3 -> 1')."""
    a, b = old.runs[0].config, new.runs[0].config
    ignored = [k for k in IGNORED_KEYS if k not in ("seen_eval_limit", "cost", "metrics")]
    keys = sorted(k for k in set(a) | set(b)
                  if not any(k == i or k.startswith(i + ".") for i in ignored)
                  and json.dumps(a.get(k), default=str) != json.dumps(b.get(k), default=str))
    return [f"{short_label(k, a.get(k)).split('=')[0]}: {a.get(k)} → {b.get(k)}" for k in keys]


def _verdict(report: Report) -> tuple[str, tuple[str, ...]]:
    """The most accurate variant and those not significantly different from it."""
    if not report.variants:
        return "", ()
    best = max(report.variants, key=lambda v: v.estimate.mean)
    return best.name, tuple(sorted(n for n, _ in tied_with(best.name, report.pairs)))


def _cost(report: Report, name: str, col: str) -> float:
    c = report.costs
    if c.empty or name not in set(c.variant):
        return math.nan
    return float(c.set_index("variant").loc[name, col])


def _change(a: float, b: float, fmt) -> str:
    if math.isnan(a) or math.isnan(b):
        return f.NA
    return f"{fmt(a)} → {fmt(b)}" + (f" ({(b - a) / a:+.0%})" if a else "")


def changes_table(old: Report, new: Report, matched: list[Matched], metric: str) -> Table:
    rows = []
    for m in matched:
        t = m.test
        if t is None:
            change, p, detect = "not paired (no shared items)", f.NA, f.NA
        else:
            change = f"{t.diff:+.3f} [{t.low:+.3f}, {t.high:+.3f}]"
            p, detect = f"{m.p_adjusted:.3g}", f"{t.mde:.3f}" if t.mde == t.mde else f.NA
        dppl = [v.forgetting("control_perplexity_delta") if v.tuned else math.nan
                for v in (m.old, m.new)]
        rows.append({
            "variant": m.name, "items": len(m.shared), f"old {metric}": f.ci(m.old.estimate),
            f"new {metric}": f.ci(m.new.estimate), "change [95% CI]": change,
            "p (Holm)": p, "test": t.test if t else f.NA, "detectable": detect,
            "right→wrong / wrong→right": (f"{t.b_only} / {t.a_only}"
                                          if t is not None and t.a_only is not None else f.NA),
            "total cost": _change(_cost(old, m.name, "total_usd"), _cost(new, m.name, "total_usd"),
                                  f.usd),
            "p95 latency": _change(_cost(old, m.name, "p95_s"), _cost(new, m.name, "p95_s"),
                                   f.seconds),
            "forgetting (Δppl)": _change(*dppl, lambda x: f"{x:+.2f}")})
    return Table("changes", "Changes per variant", pd.DataFrame(rows),
                 f"New minus old on the items both sweeps answered: the change in {metric} with "
                 "the paired bootstrap's 95% interval; p from McNemar's exact test (one seed of "
                 "yes/no outcomes each) or the paired bootstrap, Holm-adjusted over the "
                 "variants; 'detectable': the smallest change those items find with 80% power. "
                 "Cost and latency on each sweep's own cost basis.")


def _answer(row: dict) -> str:
    if row.get("output"):
        return str(row["output"])[:200]
    choices, choice = row.get("choices") or [], row.get("choice")
    return str(choices[choice]) if isinstance(choice, int) and 0 <= choice < len(choices) else f.NA


def _rows(v: Variant) -> dict[str, dict]:
    return {p["id"]: p for p in v.runs[0].predictions()}


def flips_table(matched: list[Matched]) -> Table | None:
    rows = []
    for m in matched:
        if not m.shared:
            continue
        a = m.old.outcomes_on(m.shared).mean(axis=0) >= 0.5  # the majority over seeds
        b = m.new.outcomes_on(m.shared).mean(axis=0) >= 0.5
        before, after = _rows(m.old), _rows(m.new)
        for direction, picked in (("right → wrong", a & ~b), ("wrong → right", ~a & b)):
            ids = [i for i, x in zip(m.shared, picked) if x]
            for i in ids[:MAX_FLIPS]:
                row = after.get(i) or before.get(i) or {}
                gold = row.get("gold") or []
                rows.append({"variant": m.name, "flip": direction, "id": i,
                             "question": str(row.get("question", ""))[:200],
                             "gold": " | ".join(map(str, gold)) if isinstance(gold, list) else gold,
                             "old answer": _answer(before.get(i, {})),
                             "new answer": _answer(after.get(i, {}))})
            if len(ids) > MAX_FLIPS:
                rows.append({"variant": m.name, "flip": direction, "id": "…",
                             "question": f"{len(ids) - MAX_FLIPS} more", "gold": "",
                             "old answer": "", "new answer": ""})
    if not rows:
        return None
    return Table("flips", "Items that flipped", pd.DataFrame(rows),
                 "Per matched variant, the items it got right in one sweep and wrong in the other "
                 f"(over several seeds: right in most of them); at most {MAX_FLIPS} per "
                 "direction are listed, all are counted in 'Changes per variant'.")


def config_table(matched: list[Matched]) -> Table | None:
    rows = [{"variant": m.name, "what changed in its config": "; ".join(_config_changes(m.old, m.new))
             or "nothing"} for m in matched]
    return Table("config", "What changed in each variant's config", pd.DataFrame(rows),
                 "Resolved config values that differ between the two sweeps' runs of a variant "
                 "(where and how they ran left out).") if rows else None


def _shared_notes(old: Report, new: Report, matched: list[Matched]) -> list[str]:
    notes = []

    def facts(r: Report, key: str) -> set[str]:
        return {str(run.metrics.get(key)) for v in r.variants for run in v.runs}

    for key, what in (("task", "task"), ("split_hash", "task split (split_hash)")):
        a, b = facts(old, key), facts(new, key)
        if a != b:
            notes.append(f"**⚠ The sweeps do not share a {what}**: old {', '.join(sorted(a))}; "
                         f"new {', '.join(sorted(b))}. Items are paired by id where both "
                         "answered the same one; the rest is set side by side only.")
    if matched and not any(m.shared for m in matched):
        notes.append("**⚠ No item is in both sweeps**: no paired test or flipped items; each "
                     "sweep's own estimate and interval are shown side by side.")
    old_only = sorted({v.name for v in old.variants} - {m.name for m in matched})
    new_only = sorted({v.name for v in new.variants} - {m.name for m in matched})
    if old_only:
        notes.append(f"Only in the old sweep (not compared): {', '.join(old_only)}.")
    if new_only:
        notes.append(f"Only in the new sweep (not compared): {', '.join(new_only)}.")
    if not matched:
        notes.append("**⚠ No variant label is in both sweeps**: nothing to compare. Labels "
                     "come from what varies inside each sweep; compare sweeps of the same "
                     "design.")
    return notes


def summary_lines(old: Report, new: Report, matched: list[Matched], metric: str) -> list[str]:
    lines = []
    changed = [m for m in matched if m.test is not None and m.p_adjusted < ALPHA]
    same = [m for m in matched if m.test is not None and m.test.n_items
            and m.test.diff == 0 and m.test.low == 0 and m.test.high == 0]
    for m in changed:
        lines.append(f"**{m.name}** changed: {metric} {m.old.estimate.mean:.3f} → "
                     f"{m.new.estimate.mean:.3f} ({m.test.diff:+.3f} [{m.test.low:+.3f}, "
                     f"{m.test.high:+.3f}], p={m.p_adjusted:.3g} Holm-adjusted, {m.test.test}, "
                     f"{len(m.shared)} items).")
    moved = [m for m in matched if m not in changed and m not in same and m.test is not None]
    for m in moved:
        lines.append(f"{m.name}: {m.test.diff:+.3f} [{m.test.low:+.3f}, {m.test.high:+.3f}], "
                     f"p={m.p_adjusted:.3g}: no evidence of a change (the items could detect "
                     f"about {m.test.mde:.3f} or more).")
    if same:
        lines.append(f"Identical on every shared item (change 0, p = 1): "
                     f"{', '.join(m.name for m in same)}.")
    (ob, ot), (nb, nt) = _verdict(old), _verdict(new)
    if (ob, ot) == (nb, nt):
        lines.append(f"**Decision unchanged**: {nb or f.NA} is the most accurate"
                     + (f", not significantly better than {', '.join(nt)}" if nt else "")
                     + " in both sweeps.")
    else:
        lines.append(f"**Decision changed**: before, {ob or f.NA}"
                     + (f" (tied with {', '.join(ot)})" if ot else "") + f"; now, {nb or f.NA}"
                     + (f" (tied with {', '.join(nt)})" if nt else "") + ".")
    lines += [f"Old sweep's decision: {old.headline}" if old.headline else "",
              f"New sweep's decision: {new.headline}" if new.headline else ""]
    return [x for x in lines if x]


def compare_sweeps(old_dirs: list[Path], new_dirs: list[Path], *, primary_metric: str | None = None,
                   queries: int = 100_000, cost_basis: str = "modelled") -> Report:
    old_runs, new_runs = read_runs(old_dirs), read_runs(new_dirs)
    own = {_metric(old_runs), _metric(new_runs)} - {None}
    # both sweeps ranked by one metric: the one asked for, else their own when they agree
    chosen = primary_metric or (None if len(own) == 1 else _metric(old_runs))
    metric = chosen or next(iter(own), "choice_accuracy")
    old = build_report(old_runs, queries=queries, primary_metric=chosen, cost_basis=cost_basis)
    new = build_report(new_runs, queries=queries, primary_metric=chosen, cost_basis=cost_basis)
    matched = match(old, new)
    tables = [changes_table(old, new, matched, metric), config_table(matched),
              flips_table(matched)]
    overview = [f"Old: {', '.join(map(str, old_dirs))} ({len(old_runs)} runs, "
                f"{len(old.variants)} variants); new: {', '.join(map(str, new_dirs))} "
                f"({len(new_runs)} runs, {len(new.variants)} variants); "
                f"{len(matched)} variant(s) in both, matched by label; metric: {metric}."]
    return Report(
        title="What changed between two sweeps", overview=overview + _shared_notes(old, new, matched),
        decision=summary_lines(old, new, matched, metric),
        tables=[t for t in tables if t is not None], variants=[], pairs=[],
        costs=pd.DataFrame(), failures=[], queries=queries,
        methods=METHODS,
        summary_title="What changed", items=[explorer_view(matched)],
        compare=[(old_label(m.name), new_label(m.name)) for m in matched], metric=metric)


def old_label(name: str) -> str:
    return f"{name} · old"


def new_label(name: str) -> str:
    return f"{name} · new"


def explorer_view(matched: list[Matched]) -> View:
    """The item explorer over both sweeps: each matched variant's old and new answers side by
    side; its 'changed' filter shows the items a variant flipped on."""
    columns = [v for m in matched for v in (m.old, m.new)]
    labels = [label(m.name) for m in matched for label in (old_label, new_label)]
    return View("test", "test split, both sweeps", columns, labels)


def _metric(runs: list[Run]) -> str | None:
    done = [r for r in runs if r.complete]
    return done[0].primary_metric if done else None
