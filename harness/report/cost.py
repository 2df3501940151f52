"""The report's cost numbers: build cost, cost per query and total per variant (from the
seconds each run measured and the price it was charged at), the baselines a trained
variant's build cost is weighed against, and the break-even volumes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.costs import break_even, usd
from harness.report.stats import pareto_front
from harness.report.variants import Variant

# Per-query costs within this fraction of each other count as equal for break-even: two
# timings of the same computation on a shared CPU differ by about this much.
SAME_COST = 0.15


def percentile(x: np.ndarray, q: float) -> float:
    x = x[~np.isnan(x)] if x.size else x
    return float(np.percentile(x, q)) if x.size else math.nan


def cost_frame(variants: list[Variant], queries: int) -> pd.DataFrame:
    """Numbers, one row per variant."""
    rows = []
    for v in variants:
        price = v.mean("usd_per_hour", ("cost",))
        hardware = next((r.metrics.get("cost", {}).get("hardware") for r in v.runs
                         if r.metrics.get("cost")), None)
        known = [r.build_s for r in v.runs if not math.isnan(r.build_s)]
        build_s = float(np.mean(known)) if known else math.nan
        spq = v.mean("seconds_per_query")
        build = usd(build_s, price)
        per_query = usd(spq, price)
        rows.append({"variant": v.name, "strategy": v.strategy, "tuned": v.tuned,
                     "hardware": hardware or "unpriced",
                     "usd_per_hour": price, "build_s": build_s, "build_usd": build,
                     "artifact_bytes": v.mean("artifact_bytes", ("fit",)),
                     "seconds_per_query": spq, "usd_per_1k": per_query * 1000,
                     "usd_per_query": per_query, "total_usd": build + per_query * queries,
                     "accuracy": v.estimate.mean, "p95_s": percentile(v.latency, 95)})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["pareto_cost"] = pareto_front(df.accuracy.tolist(), df.total_usd.tolist())
        df["pareto_latency"] = pareto_front(df.accuracy.tolist(), df.p95_s.tolist())
    return df


def baselines(variants: list[Variant], costs: pd.DataFrame) -> dict[str, pd.Series]:
    """What a trained variant's build cost is weighed against: the most accurate untrained
    variant without retrieval (prompting) and the most accurate one with retrieval."""
    out = {}
    for retrieves in (False, True):
        cands = [v for v in variants if not v.tuned and v.retrieves == retrieves]
        if cands:
            best = max(cands, key=lambda v: v.estimate.mean)
            out[best.name] = costs.set_index("variant").loc[best.name]
    return out


def crossover(trained: pd.Series, base: pd.Series) -> float:
    """Queries after which `trained`'s extra build cost is repaid (inf: never; nan: no price)."""
    return break_even(trained.build_usd, trained.usd_per_query, base.build_usd,
                      base.usd_per_query, SAME_COST)


def break_even_lines(variants: list[Variant], costs: pd.DataFrame) -> list[str]:
    """For each trained variant that is cheaper per query than a baseline: after how many
    queries its build cost is repaid."""
    lines = []
    c = costs.set_index("variant")
    for bname, b in baselines(variants, costs).items():
        for v in variants:
            if not v.tuned or v.name not in c.index:
                continue
            t = c.loc[v.name]
            n = crossover(t, b)
            if math.isnan(n) or math.isinf(n):
                continue
            when = "at any volume" if n == 0 else f"from {math.ceil(n):,} queries on"
            lines.append(f"Cost crossover: {v.name} costs less in total than {bname} {when} "
                         f"(accuracy {t.accuracy:.3f} vs {b.accuracy:.3f}).")
    return lines
