"""The freshness part of the report: how stale each variant is when facts change, what its
update costs, what the update fixes and what it breaks. Reads the `freshness` block of
metrics.json and predictions_fresh.jsonl (see harness.run.freshness)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.cost.prices import usd
from harness.report import fmt as f
from harness.report.fmt import NO_UPDATE, with_mode
from harness.report.variants import Variant
from harness.stats import ALPHA, bootstrap_ci, holm, paired_test


@dataclass
class Freshness:
    frame: pd.DataFrame  # one row per (variant, update mode); numbers, not text
    # (variant, mode) -> (changed item ids, seeds x those items' 0/1 outcomes after update)
    outcomes: dict[tuple[str, str], tuple[list[str], np.ndarray]]
    scenario: dict[str, Any]
    no_update: list[str] = field(default_factory=list)  # variants without an update path


def _fresh_rows(run) -> pd.DataFrame:
    path = run.path / "predictions_fresh.jsonl"
    if not path.is_file():
        return pd.DataFrame(columns=["phase", "id", "changed", "correct", "stale"])
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pd.DataFrame(rows)[["phase", "id", "changed", "correct", "stale"]]


def _unchanged_before(run, fresh: pd.DataFrame, phase: str) -> float | None:
    """The first version's accuracy on the questions that did not change (its scored
    predictions.jsonl), to set against the accuracy on them after the update."""
    ids = set(fresh[(fresh.phase == phase) & ~fresh.changed.astype(bool)].id)
    items = run.items()
    scores = items[items.id.isin(ids)].score.dropna()
    return float(scores.mean()) if len(scores) else None


def _mean(values: list[float | None]) -> float:
    known = [float(v) for v in values if v is not None]
    return float(np.mean(known)) if known else math.nan


def _changed_outcomes(frames: list[pd.DataFrame], phase: str) -> tuple[list[str], np.ndarray]:
    """(ids, seeds x items) on the changed items every seed answered in `phase`."""
    parts = [f[(f.phase == phase) & f.changed].set_index("id").correct for f in frames]
    if not parts or any(p.empty for p in parts):
        return [], np.zeros((0, 0))
    ids = sorted(set.intersection(*(set(p.index) for p in parts)))
    return ids, np.array([[float(p[i]) for i in ids] for p in parts])


def _aligned(a: tuple[list[str], np.ndarray], b: tuple[list[str], np.ndarray]):
    shared = sorted(set(a[0]) & set(b[0]))
    ia, ib = [a[0].index(i) for i in shared], [b[0].index(i) for i in shared]
    return a[1][:, ia], b[1][:, ib]


def freshness_data(variants: list[Variant], costs: pd.DataFrame) -> Freshness | None:
    """None when no run of these variants ran the freshness scenario."""
    c = costs.set_index("variant") if not costs.empty else costs
    rows, outcomes, scenario, no_update = [], {}, {}, []
    for v in variants:
        blocks = [r.metrics.get("freshness") for r in v.runs if r.metrics.get("freshness")]
        if blocks and not any(b.get("supported") for b in blocks):
            no_update.append(v.name)
        runs = [r for r in v.runs if (r.metrics.get("freshness") or {}).get("supported")]
        if not runs:
            continue
        blocks = [r.metrics["freshness"] for r in runs]
        scenario = scenario or blocks[0].get("scenario") or {}
        frames = [_fresh_rows(r) for r in runs]
        price = c.usd_per_hour.get(v.name, math.nan) if not c.empty else math.nan
        build_s = c.build_s.get(v.name, math.nan) if not c.empty else math.nan
        before = [b["before"] for b in blocks]
        modes = list(dict.fromkeys(m for b in blocks for m in b["modes"]))
        for mode in modes:
            after = [b["modes"][mode] for b in blocks if mode in b["modes"]]
            ids, out = _changed_outcomes(frames, mode)
            outcomes[(v.name, mode)] = (ids, out)
            est = bootstrap_ci(out) if out.size else None
            charged = _mean([a.get("update_build_s") for a in after])
            rows.append({
                "variant": v.name, "strategy": v.strategy, "tuned": v.tuned, "mode": mode,
                "n_changed": int(_mean([a["n_changed"] for a in after])),
                "n_unchanged": int(_mean([a["n_unchanged"] for a in after])),
                "changed_before": _mean([b["accuracy_changed"] for b in before]),
                "changed_after": _mean([a["accuracy_changed"] for a in after]),
                "changed_after_low": est.low if est else math.nan,
                "changed_after_high": est.high if est else math.nan,
                "unchanged_before": _mean([_unchanged_before(r, f, mode)
                                           for r, f in zip(runs, frames)]),
                "unchanged_after": _mean([a["accuracy_unchanged"] for a in after]),
                "stale_before": _mean([b["stale_rate"] for b in before]),
                "stale_after": _mean([a["stale_rate"] for a in after]),
                "update_s": _mean([a.get("update_s") for a in after]),
                "update_charged_s": charged,
                "update_usd": usd(charged, price),
                "build_s": build_s,
                "update_vs_build": charged / build_s if build_s and build_s > 0 else math.nan,
                "seeds": len(after),
            })
    if not rows:
        return None
    return Freshness(pd.DataFrame(rows), outcomes, scenario, no_update)


def label(row: pd.Series) -> str:
    return with_mode(row.variant, row["mode"])


def decision_lines(fresh: Freshness) -> list[str]:
    """Which variant to pick when the facts change often: the most accurate on changed
    questions after its update (the cheaper update breaks an exact tie), with the variants
    a paired test cannot tell from it (Holm-corrected) and what their updates cost."""
    df = fresh.frame.dropna(subset=["changed_after"])
    if df.empty:
        return []
    df = df.sort_values(["changed_after", "update_usd"], ascending=[False, True])
    pick = df.iloc[0]
    pick_out = fresh.outcomes[(pick.variant, pick["mode"])]
    others, tests = [], []
    for _, r in df.iloc[1:].iterrows():
        a, b = _aligned(pick_out, fresh.outcomes[(r.variant, r["mode"])])
        if a.size:
            others.append(r)
            tests.append(paired_test(a, b).p_value)
    adjusted = holm(tests) if tests else []
    tied = [r for r, p in zip(others, adjusted) if p >= ALPHA]
    share = ("" if math.isnan(pick.update_vs_build) or pick["mode"] == NO_UPDATE
             else f", {f.share(pick.update_vs_build)} of its first build")
    line = (f"**When the facts change often**: {label(pick)}. After its update it answers "
            f"{pick.changed_after:.3f} [{pick.changed_after_low:.3f}, "
            f"{pick.changed_after_high:.3f}] of the changed questions (before: "
            f"{pick.changed_before:.3f}) and {pick.unchanged_after:.3f} of the unchanged ones "
            f"(before: {pick.unchanged_before:.3f}); one update takes "
            f"{f.seconds(pick.update_charged_s)} ({f.usd(pick.update_usd)}){share}.")
    if tied:
        line += (f" Not significantly different on these {pick.n_changed} changed questions: "
                 + ", ".join(f"{label(r)} ({r.changed_after:.3f}, {f.usd(r.update_usd)} per "
                             "update)" for r in tied) + ".")
    lines = [line]
    tuned = fresh.frame[fresh.frame.tuned]
    for name, g in tuned.groupby("variant", sort=False):
        parts = [f"{r['mode']} {r.stale_after:.3f}" for _, r in g.iterrows()]
        lines.append(f"Staleness of {name}: it gave the old answer to {g.stale_before.iloc[0]:.3f} "
                     f"of the changed questions before its update; after: " + ", ".join(parts)
                     + ".")
    return lines


def table_frame(fresh: Freshness) -> pd.DataFrame:
    """The freshness table's cells, formatted."""
    f3 = f.number
    rows = []
    for _, r in fresh.frame.iterrows():
        rows.append({
            "variant": r.variant, "update": r["mode"],
            "changed: before": f3(r.changed_before),
            "changed: after [95% CI]": f"{f3(r.changed_after)} [{f3(r.changed_after_low)}, "
                                       f"{f3(r.changed_after_high)}]",
            "unchanged: before": f3(r.unchanged_before),
            "unchanged: after": f3(r.unchanged_after),
            "stale: before": f3(r.stale_before), "stale: after": f3(r.stale_after),
            "update s": f.seconds(r.update_charged_s),
            "vs first build": f.NA if r["mode"] == NO_UPDATE else f.share(r.update_vs_build),
            "update cost": f.usd(r.update_usd),
            "questions (changed / unchanged)": f"{r.n_changed} / {r.n_unchanged}",
        })
    return pd.DataFrame(rows)


def table_note(fresh: Freshness) -> str:
    s = fresh.scenario
    return (f"After the first fit, a new version of the task arrived: {s.get('changed_documents')} "
            f"of {s.get('documents')} documents changed and {s.get('changed_examples')} of "
            f"{s.get('examples')} questions got a new answer. Each variant answered the changed "
            "test questions before updating (how stale it is), then ran each update path and "
            "answered every test question of the new version: changed (did it learn?) and "
            "unchanged (what did the update break? before: the first fit's answers to them). "
            "Stale: the old answer was chosen. "
            "Update seconds are what the update's build took when computed (a cached retrain "
            "is charged its original training time); cost at the run's hardware price. "
            "rag re-embeds only the changed documents; continue trains from the first "
            "artifact on what changed; retrain trains from the base model on everything."
            + (f" No update path (the strategy cannot be updated): {', '.join(fresh.no_update)}."
               if fresh.no_update else ""))
