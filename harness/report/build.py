"""Turn run directories into the comparison report's content: tables, a decision summary
and plot data. Reads run files only (metrics.json, config.yaml, predictions.jsonl).

Rendering to Markdown/HTML is in harness.report.render; plots in harness.report.plots.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.costs import api_usd_per_1k, break_even, usd
from harness.report.freshness import Freshness, freshness_data
from harness.report.freshness import decision_lines as fresh_decision
from harness.report.freshness import table_frame as fresh_table
from harness.report.freshness import table_note as fresh_note
from harness.report.runs import Run
from harness.report.stats import Estimate, PairedTest, bootstrap_ci, holm, paired_test, pareto_front

ALPHA = 0.05
# Per-query costs within this fraction of each other count as equal for break-even: two
# timings of the same computation on a shared CPU differ by about this much.
SAME_COST = 0.15
TUNED = ("lora", "full", "hybrid")
CANNOT_CITE, NOT_TUNED, NA = "cannot cite", "not tuned", "n/a"


@dataclass
class Variant:
    name: str
    strategy: str
    runs: list[Run]
    item_ids: list[str]
    outcomes: np.ndarray  # seeds x items (primary score per item)
    latency: np.ndarray  # every item of every seed: seconds
    retrieval_latency: np.ndarray
    estimate: Estimate

    def mean(self, key: str, path: tuple[str, ...] = ()) -> float:
        vals = []
        for r in self.runs:
            v: Any = r.metrics
            for k in path + (key,):
                v = v.get(k) if isinstance(v, dict) else None
            if isinstance(v, int | float) and not isinstance(v, bool):
                vals.append(float(v))
        return float(np.mean(vals)) if vals else math.nan

    @property
    def seeds(self) -> list[int]:
        return [int(r.metrics.get("seed", 0)) for r in self.runs]

    @property
    def tuned(self) -> bool:
        return any((r.metrics.get("fit") or {}).get("trainable_params") for r in self.runs)

    @property
    def can_cite(self) -> bool:
        return any(r.metrics.get("can_cite") for r in self.runs)


@dataclass
class Table:
    key: str
    title: str
    frame: pd.DataFrame  # cells already formatted as text
    note: str = ""


@dataclass
class Report:
    title: str
    overview: list[str]
    decision: list[str]
    tables: list[Table]
    variants: list[Variant]
    pairs: list[tuple[str, str, PairedTest, float]]  # a, b, test, Holm-adjusted p
    costs: pd.DataFrame  # numeric, one row per variant
    failures: list[Run]
    queries: int
    methods: list[str]
    plots: dict[str, Path] = field(default_factory=dict)  # name -> PNG file
    freshness: Freshness | None = None  # when runs ran the freshness scenario


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NA
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _signed(x: float, digits: int = 3) -> str:
    return NA if math.isnan(x) else f"{x:+.{digits}f}"


def _usd(x: float) -> str:
    if math.isnan(x):
        return NA
    if x == 0:
        return "$0"
    return f"${x:.2g}" if abs(x) < 0.01 else f"${x:.3g}" if abs(x) < 1 else f"${x:,.2f}"


def _seconds(x: float) -> str:
    if math.isnan(x):
        return NA
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:,.1f} s"


def _queries(x: float) -> str:
    if math.isnan(x):
        return NA
    if math.isinf(x):
        return "never"
    return "from the first" if x == 0 else f"{math.ceil(x):,}"


def _ci(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def make_variants(runs: list[Run]) -> list[Variant]:
    by_name: dict[str, list[Run]] = {}
    for r in runs:
        if r.complete:
            by_name.setdefault(r.variant, []).append(r)
    variants = []
    for name, group in by_name.items():
        group.sort(key=lambda r: int(r.metrics.get("seed", 0)))
        frames = [r.items() for r in group]
        ids = sorted(set.intersection(*(set(f.id) for f in frames)))
        mats = [f.set_index("id").loc[ids, "score"].astype(float).to_numpy() for f in frames]
        outcomes = np.vstack(mats) if ids else np.zeros((len(group), 0))
        keep = ~np.isnan(outcomes).any(axis=0)  # items without a primary score (no choices
        outcomes, ids = outcomes[:, keep], [i for i, k in zip(ids, keep) if k]  # and no text)
        lat = np.concatenate([f.latency_s.to_numpy(float) for f in frames])
        rlat = np.concatenate([f.retrieval_latency_s.fillna(0).to_numpy(float) for f in frames])
        est = bootstrap_ci(outcomes) if outcomes.size else Estimate(math.nan, math.nan, math.nan, 0,
                                                                    len(group))
        variants.append(Variant(name, group[0].strategy, group, ids, outcomes, lat, rlat, est))
    order = {s: i for i, s in enumerate(("prompt", "rag", "lora", "full", "hybrid"))}
    variants.sort(key=lambda v: (order.get(v.strategy, 99), v.name))
    return variants


def compare_pairs(variants: list[Variant]) -> list[tuple[str, str, PairedTest, float]]:
    """Every pair of variants on the items both answered, with Holm-adjusted p-values."""
    tests = []
    for a, b in itertools.combinations(variants, 2):
        shared = sorted(set(a.item_ids) & set(b.item_ids))
        if not shared:
            continue
        ia = [a.item_ids.index(i) for i in shared]
        ib = [b.item_ids.index(i) for i in shared]
        tests.append((a.name, b.name, paired_test(a.outcomes[:, ia], b.outcomes[:, ib])))
    adjusted = holm([t.p_value for _, _, t in tests]) if tests else []
    return [(a, b, t, p) for (a, b, t), p in zip(tests, adjusted)]


def cost_frame(variants: list[Variant], queries: int) -> pd.DataFrame:
    rows = []
    for v in variants:
        price = v.mean("usd_per_hour", ("cost",))
        hardware = next((r.metrics.get("cost", {}).get("hardware") for r in v.runs
                         if r.metrics.get("cost")), None)
        known = [b for b in (_build_s(r) for r in v.runs) if not math.isnan(b)]
        build_s = float(np.mean(known)) if known else math.nan
        spq = v.mean("seconds_per_query")
        build = usd(build_s, price)
        per_query = usd(spq, price)
        rows.append({"variant": v.name, "strategy": v.strategy, "hardware": hardware or "unpriced",
                     "usd_per_hour": price, "build_s": build_s, "build_usd": build,
                     "seconds_per_query": spq, "usd_per_1k": per_query * 1000,
                     "usd_per_query": per_query, "total_usd": build + per_query * queries,
                     "accuracy": v.estimate.mean, "p95_s": _pct(v.latency, 95)})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["pareto_cost"] = pareto_front(df.accuracy.tolist(), df.total_usd.tolist())
        df["pareto_latency"] = pareto_front(df.accuracy.tolist(), df.p95_s.tolist())
    return df


def _build_s(r: Run) -> float:
    m = r.metrics
    v = m.get("build_s")
    if v is None:
        v = (m.get("fit") or {}).get("build_s") or m.get("fit_s")
    return float(v) if v is not None else math.nan


def _pct(x: np.ndarray, q: float) -> float:
    x = x[~np.isnan(x)] if x.size else x
    return float(np.percentile(x, q)) if x.size else math.nan


def _baselines(variants: list[Variant], costs: pd.DataFrame) -> dict[str, pd.Series]:
    """For break-even: the most accurate variant of prompt and of rag."""
    out = {}
    for s in ("prompt", "rag"):
        cands = [v for v in variants if v.strategy == s]
        if cands:
            best = max(cands, key=lambda v: v.estimate.mean)
            out[best.name] = costs.set_index("variant").loc[best.name]
    return out


def _tied_with(name: str, pairs: list[tuple[str, str, PairedTest, float]]) -> list[tuple[str, float]]:
    """Variants not significantly different from `name` (Holm-adjusted p >= ALPHA)."""
    out = []
    for a, b, _, p in pairs:
        if name in (a, b) and p >= ALPHA:
            out.append((b if a == name else a, p))
    return out


def _about_as(best: str, values: pd.Series, fmt=None) -> str:
    """'; X within 15% of it ...' for others within SAME_COST of the best value."""
    fmt = fmt or _usd
    close = [n for n in values.index if n != best
             and values[n] <= values[best] * (1 + SAME_COST)]
    if not close:
        return ""
    return (f"; {', '.join(close)} within {SAME_COST:.0%} of it, which is within timing noise "
            f"({', '.join(fmt(values[n]) for n in close)})")


def _decision(variants: list[Variant], pairs, costs: pd.DataFrame, queries: int,
              failures: list[Run], fresh: Freshness | None = None) -> list[str]:
    if not variants:
        return ["No run completed, so there is nothing to compare."]
    lines = []
    by = {v.name: v for v in variants}
    best = max(variants, key=lambda v: v.estimate.mean)
    tied = _tied_with(best.name, pairs)
    top = [best.name] + [n for n, _ in tied]
    if tied:
        lines.append(
            f"**Accuracy: no single winner.** {best.name} has the highest mean "
            f"({_ci(best.estimate)}), but its lead over "
            + ", ".join(f"{n} ({by[n].estimate.mean:.3f}, p={p:.2g})" for n, p in tied)
            + f" is not significant at α={ALPHA} (Holm-adjusted), so these are tied on this data.")
    elif len(variants) > 1:
        runner_up = max((v for v in variants if v is not best), key=lambda v: v.estimate.mean)
        p = next(p for a, b, _, p in pairs if {a, b} == {best.name, runner_up.name})
        lines.append(f"**Most accurate: {best.name}** ({_ci(best.estimate)}); better than the "
                     f"runner-up {runner_up.name} ({runner_up.estimate.mean:.3f}) with "
                     f"Holm-adjusted p={p:.2g}.")
    else:
        lines.append(f"Only one variant completed: {best.name} ({_ci(best.estimate)}).")
    c = costs.set_index("variant")
    priced = c[~c.total_usd.isna()]
    if not priced.empty:
        cheapest = priced.total_usd.idxmin()
        lines.append(f"**Cheapest** to build and serve {queries:,} queries: {cheapest} "
                     f"({_usd(priced.total_usd[cheapest])}, accuracy {c.accuracy[cheapest]:.3f})"
                     + _about_as(cheapest, priced.total_usd) + ".")
        top_priced = priced.loc[[n for n in top if n in priced.index]]
        if not top_priced.empty and top_priced.total_usd.idxmin() != cheapest:
            n = top_priced.total_usd.idxmin()
            lines.append(f"Cheapest among the most accurate: {n} ({_usd(priced.total_usd[n])})"
                         + _about_as(n, top_priced.total_usd) + ".")
    fastest = c.p95_s.idxmin() if c.p95_s.notna().any() else None
    if fastest is not None:
        lat = c.p95_s.dropna()
        lines.append(f"**Fastest** (p95 latency per query): {fastest} ({_seconds(lat[fastest])})"
                     + _about_as(fastest, lat, _seconds) + ".")
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
    citing = [v for v in variants if v.can_cite]
    if citing:
        bc = max(citing, key=lambda v: v.estimate.mean)
        also = [n for n, _ in _tied_with(bc.name, pairs) if by[n].can_cite]
        lines.append(f"**If answers must cite their sources**: {bc.name} "
                     f"(accuracy {bc.estimate.mean:.3f}, citation recall "
                     f"{_fmt(bc.mean('citation_recall'))})"
                     + (f", not significantly better than {', '.join(also)}" if also else "")
                     + ". " + (", ".join(v.name for v in variants if not v.can_cite)
                               + " cannot cite." if len(citing) < len(variants) else ""))
    lines.extend(_break_even_lines(variants, costs))
    tuned = [v for v in variants if v.tuned and not math.isnan(
        v.mean("control_perplexity_delta", ("fit", "notes", "forgetting")))]
    if tuned:
        least = min(tuned, key=lambda v: v.mean("control_perplexity_delta", ("fit", "notes", "forgetting")))
        delta = least.mean("control_perplexity_delta", ("fit", "notes", "forgetting"))
        lines.append(f"**Forgetting**: of the tuned variants, {least.name} changed general-text "
                     f"perplexity least ({delta:+.2f}); prompting and RAG leave the model "
                     "unchanged.")
    if fresh is not None:
        lines.extend(fresh_decision(fresh))
    seeds = {len(v.runs) for v in variants}
    if seeds == {1}:
        lines.append("Each variant ran with one seed: the intervals reflect the sampling of "
                     "test items only, not training-run variance; add seeds (seed=0,1,2) to "
                     "include it.")
    if failures:
        lines.append(f"**{len(failures)} run(s) did not complete** and are left out of every "
                     "number above (see Failed runs).")
    return lines


def _break_even_lines(variants: list[Variant], costs: pd.DataFrame) -> list[str]:
    """For each tuned variant that is cheaper per query than a prompt/RAG baseline: after
    how many queries its build cost is repaid."""
    lines = []
    c = costs.set_index("variant")
    for bname, b in _baselines(variants, costs).items():
        for v in variants:
            if v.strategy not in TUNED or v.name not in c.index:
                continue
            t = c.loc[v.name]
            n = break_even(t.build_usd, t.usd_per_query, b.build_usd, b.usd_per_query,
                           SAME_COST)
            if math.isnan(n) or math.isinf(n):
                continue
            when = "at any volume" if n == 0 else f"from {math.ceil(n):,} queries on"
            lines.append(f"Cost crossover: {v.name} costs less in total than {bname} {when} "
                         f"(accuracy {t.accuracy:.3f} vs {b.accuracy:.3f}).")
    return lines


def build_report(runs: list[Run], *, queries: int = 100_000, title: str = "") -> Report:
    variants = make_variants(runs)
    failures = [r for r in runs if not r.complete]
    pairs = compare_pairs(variants)
    costs = cost_frame(variants, queries)
    tables = [
        _accuracy_table(variants),
        _pairs_table(pairs),
        _cost_table(variants, costs, queries),
        _latency_table(variants),
        _attribution_table(variants),
        _forgetting_table(variants),
        _seen_table(variants),
        _build_table(variants),
    ]
    api = _api_table(variants)
    if api is not None:
        tables.insert(3, api)
    fresh = freshness_data(variants, costs)
    if fresh is not None:
        tables.insert(tables.index(next(t for t in tables if t.key == "forgetting")) + 1,
                      Table("freshness", "Knowledge freshness", fresh_table(fresh),
                            fresh_note(fresh)))
    if failures:
        tables.append(_failures_table(failures))
    done = [r for r in runs if r.complete]
    first = done[0].metrics if done else (runs[0].metrics if runs else {})
    tasks = sorted({str(r.metrics.get("task")) for r in done})
    models = sorted({str(r.metrics.get("model")) for r in done})
    split_hashes = sorted({str(r.metrics.get("split_hash")) for r in done})
    versions = first.get("versions") or {}
    overview = [
        f"{len(runs)} run(s): {len(done)} complete, {len(failures)} not complete; "
        f"{len(variants)} variant(s).",
        f"Task: {', '.join(tasks) or NA}; model: {', '.join(models) or NA}; "
        f"evaluated on the {first.get('split', 'test')} split "
        f"({', '.join(str(n) for n in sorted({len(v.item_ids) for v in variants})) or 0} items).",
    ]
    if len(split_hashes) > 1:
        overview.append(f"**Warning:** the runs used {len(split_hashes)} different task splits; "
                        "paired comparisons use only the items two variants share.")
    if versions:
        overview.append("Produced with " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                                      if k != "git_commit" and v)
                        + (f"; git commit {versions['git_commit'][:12]}"
                           if versions.get("git_commit") else "") + ".")
    overview.append(f"Report generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    return Report(
        title=title or "Adaptation strategy comparison",
        overview=overview,
        decision=_decision(variants, pairs, costs, queries, failures, fresh),
        tables=tables, variants=variants, pairs=pairs, costs=costs, failures=failures,
        queries=queries, methods=_methods(costs, queries), freshness=fresh,
    )


def _accuracy_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        primary = v.runs[0].metrics.get("primary_metric", "choice_accuracy")
        rows.append({"variant": v.name, "seeds": ", ".join(map(str, v.seeds)),
                     "items": len(v.item_ids), primary + " [95% CI]": _ci(v.estimate),
                     "exact match": _fmt(v.mean("exact_match")), "F1": _fmt(v.mean("f1")),
                     "contains": _fmt(v.mean("contains"))})
    df = pd.DataFrame(rows)
    for col in ("exact match", "F1", "contains"):  # generation off: say so once, not per row
        if not df.empty and (df[col] == NA).all():
            df = df.drop(columns=col)
    return Table("accuracy", "Accuracy", df,
                 "Mean over test items and seeds, with a 95% percentile-bootstrap interval that "
                 "resamples items (and seeds when there are several). Exact match, F1 and "
                 "contains score the generated answer when generation was on.")


def _pairs_table(pairs) -> Table:
    rows = []
    for a, b, t, p_adj in pairs:
        rows.append({"A": a, "B": b, "A − B": f"{t.diff:+.3f}",
                     "95% CI": f"[{t.low:+.3f}, {t.high:+.3f}]", "test": t.test,
                     "p": f"{t.p_value:.2g}", "p (Holm)": f"{p_adj:.2g}",
                     "A only / B only": f"{t.a_only} / {t.b_only}" if t.a_only is not None else "",
                     "verdict": ("A better" if t.diff > 0 else "B better") if p_adj < ALPHA
                     else "not significant", "items": t.n_items})
    return Table("pairs", "Paired comparisons", pd.DataFrame(rows),
                 "Every pair on the items both answered. One seed each: McNemar's exact test "
                 "on the items only one of the two got right (A only / B only). Several seeds: "
                 "a paired bootstrap over items of the seed-averaged scores. p (Holm) corrects "
                 f"for testing every pair; verdicts use it at α={ALPHA}.")


def _cost_table(variants: list[Variant], costs: pd.DataFrame, queries: int) -> Table:
    rows = []
    bases = _baselines(variants, costs)
    for _, c in costs.iterrows():
        row = {"variant": c.variant, "priced as": f"{c.hardware} @ ${c.usd_per_hour:.2f}/h"
               if not math.isnan(c.usd_per_hour) else "no price",
               "build": _seconds(c.build_s), "build cost": _usd(c.build_usd),
               "per 1k queries": _usd(c.usd_per_1k),
               f"total, {queries:,} queries": _usd(c.total_usd)}
        for bname, b in bases.items():
            if bname == c.variant or c.strategy not in TUNED:
                row[f"break-even vs {bname}"] = "—"
            else:
                row[f"break-even vs {bname}"] = _queries(
                    break_even(c.build_usd, c.usd_per_query, b.build_usd, b.usd_per_query,
                               SAME_COST))
        rows.append(row)
    return Table("cost", "Cost", pd.DataFrame(rows),
                 "Build = training or indexing, the seconds it took when computed (a cache hit "
                 "is charged what the original build took). Per-query cost = predict seconds "
                 "per query × price. Break-even: the query volume after which a tuned "
                 "variant's extra build cost is repaid by cheaper queries ('never' when it is "
                 f"not cheaper per query; per-query costs within {SAME_COST:.0%} count as equal, "
                 "the spread of repeated timings of one computation on a shared CPU). Timings "
                 "are single measurements. Prices come from conf/cost and are assumptions.")


def _api_table(variants: list[Variant]) -> Table | None:
    prices = {}
    for v in variants:
        for r in v.runs:
            prices.update((r.metrics.get("cost") or {}).get("api") or {})
    if not prices:
        return None
    rows = []
    for v in variants:
        if v.tuned:
            continue
        n = v.mean("n_examples")
        ptok, ctok = v.mean("prompt_tokens") / n, v.mean("completion_tokens") / n
        row = {"variant": v.name, "prompt tokens/query": f"{ptok:.0f}",
               "completion tokens/query": f"{ctok:.1f}"}
        for name, p in prices.items():
            row[f"{name} per 1k queries"] = _usd(api_usd_per_1k(ptok, ctok, p))
        rows.append(row)
    return Table("api", "Hosted API price comparison", pd.DataFrame(rows),
                 "What the measured token counts of the untuned variants would cost at the "
                 "per-token prices in cost.api (tuned models are not priced this way).")


def _latency_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        answer = v.latency - v.retrieval_latency
        has_ret = bool(np.nanmax(v.retrieval_latency) > 0) if v.retrieval_latency.size else False
        rows.append({
            "variant": v.name, "p50": _seconds(_pct(v.latency, 50)),
            "p95": _seconds(_pct(v.latency, 95)), "p99": _seconds(_pct(v.latency, 99)),
            "retrieval p50 / p95": (f"{_seconds(_pct(v.retrieval_latency, 50))} / "
                                    f"{_seconds(_pct(v.retrieval_latency, 95))}") if has_ret
            else "no retrieval",
            "model p50 / p95": f"{_seconds(_pct(answer, 50))} / {_seconds(_pct(answer, 95))}",
            "seconds per query (throughput)": _seconds(v.mean("seconds_per_query")),
        })
    return Table("latency", "Latency", pd.DataFrame(rows),
                 "Per query, the wall time of the batches that answered it (batch size "
                 "answer.batch_size), split into retrieval (embedding the question and "
                 "searching the index) and the model (scoring choices, generating). Seconds "
                 "per query is predict time / queries.")


def _attribution_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        if v.can_cite:
            rows.append({"variant": v.name, "recall@k": _fmt(v.mean("recall_at_k")),
                         "MRR": _fmt(v.mean("mrr")),
                         "citation precision": _fmt(v.mean("citation_precision")),
                         "citation recall": _fmt(v.mean("citation_recall"))})
        else:
            rows.append({"variant": v.name, "recall@k": CANNOT_CITE, "MRR": CANNOT_CITE,
                         "citation precision": CANNOT_CITE, "citation recall": CANNOT_CITE})
    return Table("attribution", "Source attribution", pd.DataFrame(rows),
                 "Retrieval variants cite the documents their passages came from; recall@k "
                 "and MRR check the gold source among them. Prompting and tuned models answer "
                 "from weights and cannot name a source.")


def _forgetting_table(variants: list[Variant]) -> Table:
    rows = []
    path = ("fit", "notes", "forgetting")
    for v in variants:
        if not v.tuned:
            rows.append({"variant": v.name, "control perplexity before": NOT_TUNED,
                         "after": NOT_TUNED, "change": NOT_TUNED,
                         "greedy answers unchanged": NOT_TUNED, "answer token F1 vs base": NOT_TUNED})
            continue
        delta = v.mean("control_perplexity_delta", path)
        rows.append({"variant": v.name,
                     "control perplexity before": _fmt(v.mean("control_perplexity_before", path), 2),
                     "after": _fmt(v.mean("control_perplexity_after", path), 2),
                     "change": _signed(delta, 2),
                     "greedy answers unchanged": _fmt(v.mean("control_greedy_agreement", path), 2),
                     "answer token F1 vs base": _fmt(v.mean("control_greedy_f1", path), 2)})
    return Table("forgetting", "Forgetting", pd.DataFrame(rows),
                 "On a shipped control set of general text and prompts unrelated to the task: "
                 "perplexity before and after tuning, and how many greedy answers stayed the "
                 "same. Untuned strategies leave the model's weights unchanged.")


def _seen_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        if not v.tuned:
            rows.append({"variant": v.name, "seen (train split)": NOT_TUNED,
                         "unseen (test)": _fmt(v.estimate.mean), "gap": NOT_TUNED})
            continue
        seen = v.mean("choice_accuracy", ("seen",))
        rows.append({"variant": v.name, "seen (train split)": _fmt(seen),
                     "unseen (test)": _fmt(v.estimate.mean),
                     "gap": _signed(seen - v.estimate.mean)})
    return Table("seen", "Seen vs unseen questions", pd.DataFrame(rows),
                 "Tuned variants are also scored on train-split questions they were trained "
                 "on. Test questions ask about facts in the training documents too, but in "
                 "wording never trained on: the gap shows memorized question forms.")


def _build_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        f = ("fit",)
        rows.append({
            "variant": v.name,
            "trainable params": _int(v.mean("trainable_params", f)) if v.tuned else NOT_TUNED,
            "train tokens": _int(v.mean("train_tokens", f)) if v.tuned else NOT_TUNED,
            "FLOPs (est.)": f"{v.mean('flops_est', f):.3g}" if v.tuned else NOT_TUNED,
            "artifact": _bytes(v.mean("artifact_bytes", f)),
            "peak memory": _bytes(v.mean("peak_mem_mb") * 2**20),
            "cache hit": ", ".join(str(bool((r.metrics.get("fit") or {}).get("cache_hit")))
                                   for r in v.runs),
        })
    return Table("build", "What was built", pd.DataFrame(rows),
                 "Artifact: the adapter or checkpoint (tuned) or the embedding index (RAG). "
                 "FLOPs = 2·N·T + 2·N_bwd·T + 2·N_train·T. Peak memory is the run's peak "
                 "resident set (CPU) or allocated GPU memory.")


def _failures_table(failures: list[Run]) -> Table:
    rows = [{"run": r.path.name, "variant": r.variant, "status": r.status,
             "error": str(r.metrics.get("error") or "killed or still running: no final "
                          "metrics").splitlines()[0][:200]} for r in failures]
    return Table("failures", "Failed runs", pd.DataFrame(rows),
                 "Runs that raised (their traceback is in their metrics.json) or never finished. "
                 "Re-invoking the sweep with the same hydra.sweep.dir redoes them.")


def _int(x: float) -> str:
    return NA if math.isnan(x) else f"{int(round(x)):,}"


def _bytes(x: float) -> str:
    if math.isnan(x) or x == 0:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if x < 1024 or unit == "GB":
            return f"{x:,.1f} {unit}" if unit != "B" else f"{int(x)} B"
        x /= 1024
    return NA


def _methods(costs: pd.DataFrame, queries: int) -> list[str]:
    prices = sorted({f"{r.hardware} at ${r.usd_per_hour:.2f}/h" for r in costs.itertuples()
                     if not math.isnan(r.usd_per_hour)}) \
        if not costs.empty else []
    return [
        "Confidence intervals: percentile bootstrap (5,000 resamples) over test items, and "
        "over seeds when a variant has several.",
        "Paired tests: McNemar's exact test (one seed per variant) or a paired bootstrap over "
        f"items (several seeds); p-values Holm-adjusted over all pairs; α = {ALPHA}.",
        f"Total cost = build cost + {queries:,} queries × cost per query; prices used: "
        + (", ".join(prices) or "none") + " (conf/cost, user-editable assumptions).",
        "Pareto-optimal: no other variant is at least as accurate and at most as costly "
        "(or as slow), and strictly better in one.",
    ]
