"""Turn run directories into the comparison report's content: the overview, the decision
summary, the tables and what the plots need. Reads run files only (metrics.json,
config.yaml, predictions.jsonl, predictions_fresh.jsonl).

    variants.py   runs -> variants (seeds pooled) and paired tests
    cost.py       cost per variant, baselines, break-even
    decision.py   the decision summary
    tables.py     one builder per table
    freshness.py  the knowledge-freshness table, decision line and data
    plots.py / render.py   PNG plots; report.md and report.html
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cost.projection import load_hardware
from harness.cost.target import load_target
from harness.errors import ConfigError, UserError
from harness.report import fmt as f
from harness.report import free_form, tables
from harness.report.cost import BASES, cost_frame
from harness.report.cost_tables import (
    CONTENTION_FACTOR,
    contention_lines,
    cost_model_table,
    projection_table,
)
from harness.report.decision import decision_lines
from harness.report.freshness import Freshness, freshness_data
from harness.report.freshness import table_frame as freshness_table
from harness.report.freshness import table_note as freshness_note
from harness.report.frontier import Frontier, frontier_data, frontier_table
from harness.report.items import View, views
from harness.report.power import EQUIVALENCE, POWER, items_needed, points
from harness.report.search import (
    StudyResult,
    contest_line,
    cost_lines,
    method_lines,
    summary_table,
    trials_table,
    tuning_data,
    tuning_usd,
)
from harness.report.selection import Pick, pick_representatives
from harness.report.tables import Table
from harness.report.target import target_table
from harness.report.variants import Pairs, Variant, compare_pairs, make_variants
from harness.run_folders import Run, extra_metrics, item_key, known_metrics
from harness.stats import ALPHA
from harness.system import config_dir


@dataclass
class Report:
    title: str
    overview: list[str]
    decision: list[str]
    tables: list[Table]
    variants: list[Variant]
    pairs: Pairs
    costs: pd.DataFrame  # numeric, one row per variant
    failures: list[Run]
    queries: int
    methods: list[str]
    plots: dict[str, Path] = field(default_factory=dict)  # name -> PNG file
    freshness: Freshness | None = None  # when runs ran the freshness scenario
    frontier: Frontier | None = None  # when a tuning method ran at two or more training points
    studies: list[StudyResult] = field(default_factory=list)  # a search's (experiment=fair)
    picks: list[Pick] = field(default_factory=list)  # each strategy's representative
    summary_title: str = "Decision summary"  # the first section's heading
    headline: str = ""  # the decision's first verdict (after any notes on how variants were chosen)
    items: list[View] = field(default_factory=list)  # the item explorer's views (test, val)
    compare: list[tuple[str, str]] = field(default_factory=list)  # explorer: (old, new) columns
    metric: str = ""  # what the variants are ranked and the items marked right by


def check_metric(metric: str | None, runs: list[Run]) -> None:
    """A report.primary_metric the runs can be ranked by, or a clear error."""
    if metric is None:
        return
    known = known_metrics(runs)
    if metric not in known:
        raise UserError(f"report.primary_metric: unknown metric '{metric}'; choose one of: "
                        f"{', '.join(known)}")
    if not any(r.complete and r.metrics.get(metric) is not None for r in runs):
        raise UserError(f"report.primary_metric: no complete run has '{metric}' (free-form "
                        "metrics need answer.generate=true; judge_* needs judge=<model>; "
                        "groundedness a strategy that cites)")


def build_report(runs: list[Run], *, queries: int = 100_000, title: str = "",
                 primary_metric: str | None = None, labels: Path | None = None,
                 cost_basis: str = "modelled", project_to: Sequence[str] = (),
                 project_model: str | None = None, contention_factor: float = CONTENTION_FACTOR,
                 equivalence_margin: float = EQUIVALENCE, select_on: str = "auto",
                 cluster_by: str | None = None) -> Report:
    check_metric(primary_metric, runs)
    _check_options(cost_basis, contention_factor, equivalence_margin, project_model, project_to)
    try:
        hardware = load_hardware(project_to, [config_dir()])
        target = load_target(project_model, [config_dir()]) if project_model else None
    except ConfigError as e:
        raise UserError(str(e)) from None
    variants = make_variants(runs, primary_metric, cluster=cluster_by)
    metric = primary_metric or (variants[0].runs[0].primary_metric if variants else "")
    failures = [r for r in runs if not r.complete]
    pairs = compare_pairs(variants, equivalence_margin)
    studies = tuning_data(runs, variants)
    costs = cost_frame(variants, queries, cost_basis, tuning_usd(studies))
    picks = pick_representatives(variants, runs, select_on,
                                 frozenset(s.variant for s in studies if s.variant))
    human = free_form.read_labels(labels, variants) if labels else None
    trusted = free_form.trust(variants, human)
    warnings = free_form.warnings_for(trusted)
    fresh = freshness_data(variants, costs)
    frontier = frontier_data(variants, metric)
    parts = _tables(runs, variants, pairs, costs, metric=metric, queries=queries,
                    trusted=trusted, warnings=warnings, fresh=fresh, hardware=hardware, target=target,
                    human=human,
                    contention_factor=contention_factor, margin=equivalence_margin)
    if frontier is not None:  # after the Forgetting table
        at = next(i for i, t in enumerate(parts) if t.key == "forgetting") + 1
        parts.insert(at, frontier_table(frontier))
    if studies:  # after the accuracy table
        parts[1:1] = [summary_table(studies, variants), trials_table(studies)]
    summary = _summary(variants, pairs, costs, picks, queries=queries, basis=cost_basis,
                       margin=equivalence_margin, tuning=tuning_usd(studies))
    verdicts = decision_lines(*summary, queries, failures, fresh, metric=metric,
                              chosen=primary_metric is not None,
                              warning=warnings.get(item_key(metric)))
    return Report(
        title=title or "Adaptation strategy comparison",
        overview=_overview(runs, variants),
        headline=verdicts[0] if verdicts else "",
        decision=contest_line(studies) + [p.line() for p in picks if p.line()] + verdicts
        + cost_lines(studies, costs)
        + (frontier.lines if frontier is not None else [])
        + contention_lines(variants, contention_factor) + export_line(summary[0]),
        tables=parts, variants=variants, pairs=pairs, costs=costs, failures=failures,
        queries=queries, methods=methods(costs, queries, pairs) + method_lines(studies),
        freshness=fresh,
        frontier=frontier, studies=studies, picks=picks,
        items=views(variants, make_variants(runs, primary_metric, on_val=True, cluster=cluster_by)),
        metric=metric,
    )


def export_line(variants: list[Variant]) -> list[str]:
    """The command that carries the most accurate variant out, checked (docs/export.md)."""
    done = [v for v in variants if not any(r.metrics.get("served") for r in v.runs)]
    if not done:
        return []
    best = max(done, key=lambda v: v.estimate.mean)
    sweep = best.runs[0].path.parent
    peft = any(k.startswith("strategy.adapter.") for k in best.runs[0].config)
    fmt = " --format merged" if best.tuned and peft else ""
    return [f"To deploy {best.name}: `harness-export {sweep} --variant '{best.name}' "
            f"--out export/{fmt} --check` carries it out with its tokenizer and settings and "
            "checks that it scores what was measured (docs/export.md)."]


def _check_options(cost_basis: str, contention_factor: float, equivalence_margin: float,
                   project_model: str | None, project_to: Sequence[str]) -> None:
    if cost_basis not in BASES:
        raise UserError(f"report.cost_basis: '{cost_basis}' is not one of {', '.join(BASES)}")
    if not contention_factor > 1:
        raise UserError(f"report.contention_factor must be > 1, got {contention_factor}")
    if not 0 < equivalence_margin < 1:
        raise UserError(f"report.equivalence_margin must be in (0, 1), got {equivalence_margin}")
    if project_model and not project_to:
        raise UserError("report.project_model needs the hardware to project to: add "
                        "report.project_to=[A100] (names of conf/cost/hardware/*.yaml)")


def _summary(variants: list[Variant], pairs: Pairs, costs: pd.DataFrame, picks: list[Pick], *,
             queries: int, basis: str, margin: float, tuning: dict[str, float]
             ) -> tuple[list[Variant], Pairs, pd.DataFrame]:
    """What the decision summary ranks: one variant per strategy (its representative) when
    a strategy has several, every variant otherwise."""
    chosen = {p.chosen for p in picks}
    if len(chosen) == len(variants):
        return variants, pairs, costs
    kept = [v for v in variants if v.name in chosen]
    return kept, compare_pairs(kept, margin), cost_frame(kept, queries, basis, tuning)


def _tables(runs: list[Run], variants: list[Variant], pairs: Pairs, costs: pd.DataFrame, *,
            metric: str, queries: int, trusted, warnings: dict, fresh: Freshness | None, human,
            hardware, target, contention_factor: float, margin: float) -> list[Table]:
    """Every table of the report, in order; those with nothing to show are left out."""
    extra = extra_metrics(runs)
    parts = [
        tables.accuracy_table(variants, metric, extra),
        free_form.free_form_table(variants, warnings),
        free_form.trust_table(trusted, variants),
        free_form.ppi_table(variants, human, trusted, metric),
        free_form.ranking_table(variants, metric, extra),
        tables.pairs_table(pairs, margin),
        tables.api_table(variants),
        tables.cost_table(variants, costs, queries),
        cost_model_table(variants, contention_factor),
        projection_table(variants, hardware),
        target_table(variants, hardware, target),
        tables.latency_table(variants),
        tables.retrieval_table(variants),
        tables.attribution_table(variants),
        tables.forgetting_table(variants),
        Table("freshness", "Knowledge freshness", freshness_table(fresh), freshness_note(fresh))
        if fresh is not None else None,
        tables.seen_table(variants, metric),
        tables.build_table(variants),
        tables.failures_table([r for r in runs if not r.complete])
        if any(not r.complete for r in runs) else None,
    ]
    return [t for t in parts if t is not None]


def _overview(runs: list[Run], variants: list[Variant]) -> list[str]:
    done = [r for r in runs if r.complete]
    failures = len(runs) - len(done)
    tested = [r for r in done if not r.on_val] or done
    first = tested[0].metrics if tested else (runs[0].metrics if runs else {})
    tasks = sorted({str(r.metrics.get("task")) for r in done})
    models = sorted({str(r.metrics.get("model")) for r in done})
    split_hashes = sorted({str(r.metrics.get("split_hash")) for r in done})
    versions = first.get("versions") or {}
    on_val = sum(r.on_val for r in done)
    overview = [
        f"{len(runs)} run(s): {len(done)} complete, {failures} not complete; "
        f"{len(variants)} variant(s)"
        + (f"; {on_val} of the complete runs scored the validation split (to choose "
           "settings), the rest the test split." if on_val else "."),
        f"Task: {', '.join(tasks) or f.NA}; model: {', '.join(models) or f.NA}; "
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
    overview += question_set_lines(first)
    overview.append(f"Report generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    return overview


def question_set_lines(metrics: dict) -> list[str]:
    """What the generation.json beside a generated question set says of its validity."""
    qs = (metrics.get("corpus") or {}).get("question_set")
    if not qs:
        return []
    v = qs["validity"]
    line = (f"Question set generated ({qs.get('generator')}"
            + (", paraphrased" if qs.get("paraphrased") else "") + "): questions share "
            f"{f.number(v.get('overlap_mean'), 2)} of their content words with their source "
            f"(median longest shared run {v.get('longest_shared_run_median')} words); a "
            f"lexical shortcut with no model answers {f.number(v.get('shortcut_accuracy'))}; "
            f"{v.get('near_duplicate_pairs')} near-duplicate pair(s); "
            f"{f.number(v.get('documents_covered'), 2)} of the documents have a question.")
    return [line] + [f"**⚠ Question set:** {w}." for w in v.get("warnings", [])]


def power_line(pairs: Pairs, diff: float = 0.05) -> str:
    """How many items would detect a `diff` difference, from the pairs' own discordance
    (McNemar) or standard errors (bootstrap); the median over the pairs."""
    need = []
    for _, _, t, _ in pairs:
        if t.mcnemar and t.discordance is not None:
            need.append(items_needed(diff, t.discordance))
        elif t.mde == t.mde and t.mde > 0:  # the bootstrap's SE shrinks as 1/sqrt(items)
            need.append(math.ceil(t.n_items * (t.mde / diff) ** 2))
    if not need:
        return ""
    n_items = sorted({t.n_items for _, _, t, _ in pairs})
    return (f"Power: each pair's 'detectable' difference is the smallest it finds with "
            f"{POWER:.0%} power at α = {ALPHA} before Holm's correction (McNemar: exact power "
            f"at the pair's share of discordant items; the bootstrap, over items or clusters: "
            f"2.8 × its standard error, which clustering widens by the square root of the "
            f"design effect). Over the pairs here (median), "
            f"about {int(np.median(need)):,} items (here {', '.join(map(str, n_items))}) would "
            f"detect a {points(diff)} difference (Connor 1987's formula for paired "
            "proportions).")


def methods(costs: pd.DataFrame, queries: int, pairs: Pairs = ()) -> list[str]:
    prices = sorted({f"{r.hardware} at ${r.usd_per_hour:.2f}/h" for r in costs.itertuples()
                     if not math.isnan(r.usd_per_hour)}) \
        if not costs.empty else []
    return [
        "Confidence intervals: percentile bootstrap (5,000 resamples) over test items, and "
        "over seeds when a variant has several. Questions that share a cluster (by default "
        "their first source document; task.cluster_by names another field, or none) are "
        "resampled together: the unit that was sampled (Miller 2024, 'Adding Error Bars to "
        "Evals'); the Accuracy table gives the clusters and the design effect.",
        "Paired tests: McNemar's exact test (one seed per variant, a yes/no metric, independent "
        "items) or a paired bootstrap over items or clusters (several seeds, a continuous "
        "metric such as F1 or semantic similarity, or clustered items); p-values "
        f"Holm-adjusted over all pairs; α = {ALPHA}.",
        f"Total cost = build cost + {queries:,} queries × cost per query; prices used: "
        + (", ".join(prices) or "none") + " (conf/cost, user-editable assumptions). Seconds: "
        + (f"modelled from each run's counted work and this machine's calibrated throughput "
           f"(report.cost_basis=modelled); costs within {costs.attrs.get('same_within', 0):.0%} "
           "count as equal (the model's uncertainty)." if costs.attrs.get("basis") == "modelled"
           else "measured (report.cost_basis=measured" + (f"; {costs.attrs['why']}"
                                                        if costs.attrs.get("why") else "") + ")."),
        "P(A > B): the share of resamples of the test items (their clusters) and of each "
        "variant's training seeds in which A scored above B, ties half (Bouthillier et al. "
        "2021, 'Accounting for variance in machine learning benchmarks'); with several seeds "
        "on both sides, its 95% interval over the item draws. One seed is one draw of a "
        "tuned model: its variance is in the numbers only when seeds were run (seed=0,1,2, or "
        "search.final_seeds in a fair contest).",
        "Pareto-optimal: no other variant is at least as accurate and at most as costly "
        "(or as slow), and strictly better in one.",
    ] + [line for line in [power_line(pairs)] if line]
