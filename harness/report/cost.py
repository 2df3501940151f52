"""The report's cost numbers: build cost, cost per query and total per variant, the
baselines a trained variant's build cost is weighed against, and the break-even volumes.

Seconds come from the cost basis (report.cost_basis): `modelled` (default) = each run's
work priced on the machine profile (harness.cost.profile), the same however busy the machine
was; `measured` = the stopwatch. Costs within the basis's uncertainty count as equal: for
modelled seconds, the calibration's own (repeat spread and fit residual, the largest of
the variants'); for measured ones, SAME_COST."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.cost.prices import break_even, usd
from harness.report.variants import Variant
from harness.stats import pareto_front

# Measured per-query costs within this fraction of each other count as equal for
# break-even: two timings of the same computation on a shared CPU differ by about this much.
SAME_COST = 0.15
BASES = ("modelled", "measured")
MIN_SAME = 0.02  # a modelled tie margin is never below this


def percentile(x: np.ndarray, q: float) -> float:
    x = x[~np.isnan(x)] if x.size else x
    return float(np.percentile(x, q)) if x.size else math.nan


def has_model(v: Variant) -> bool:
    return all(r.metrics.get("modelled_build_s") is not None
               and r.metrics.get("modelled_predict_s") is not None for r in v.runs)


def is_served(v: Variant) -> bool:
    """Its model answered from an endpoint (metrics.json -> served): priced by its requests,
    with no modelled seconds."""
    return any(r.metrics.get("served") for r in v.runs)


def served_pricing(v: Variant) -> str:
    """How a served variant is priced, in words for the cost table."""
    price = next((r.metrics["served"].get("price") or {} for r in v.runs if r.metrics.get("served")), {})
    by = next((r.metrics.get("priced_by") for r in v.runs if r.metrics.get("priced_by")), None)
    when = ", ".join(str(price[k]) for k in ("date", "source") if price.get(k))
    if by == "per token":
        rates = (f"${price.get('input_per_mtok') or 0:g} in / ${price.get('output_per_mtok') or 0:g} "
                 "out per Mtok")
        return f"served, {rates}" + (f" ({when})" if when else "")
    if by == "per hour":
        return f"served, ${price.get('price_per_hour'):.2f}/h of its machine" + (f" ({when})" if when else "")
    return "served, no price (model.price)"


def cost_frame(variants: list[Variant], queries: int, basis: str = "modelled",
               tuning: dict[str, float] | None = None) -> pd.DataFrame:
    """Numbers, one row per variant: build_s, seconds_per_query and p95_s on the basis
    used (df.attrs: basis, why when it differs from the one asked for, same_within), and
    both measured_* and modelled_* beside them. `tuning`: variant -> what the search that
    chose it cost (harness.report.search); its build cost is then that search (its own
    training included), and retrain_usd what one more build of it costs."""
    if basis not in BASES:
        raise ValueError(f"report.cost_basis must be one of {', '.join(BASES)}, got '{basis}'")
    used, why = basis, ""
    local = [v for v in variants if not is_served(v)]
    if basis == "modelled" and not all(has_model(v) for v in local):
        used = "measured"
        reasons = sorted({f"{v.name}: {(r.metrics.get('modelled') or {}).get('off')}"
                          for v in local if not has_model(v) for r in v.runs
                          if (r.metrics.get("modelled") or {}).get("off")})
        why = ("some runs have no modelled seconds ("
               + ("; ".join(reasons) if reasons else
                  "cost.model_time=false, or written by an older version")
               + "): every cost below is measured")
    rows = [_row(v, used, queries, (tuning or {}).get(v.name, math.nan)) for v in variants]
    df = pd.DataFrame(rows)
    if not df.empty:
        df["pareto_cost"] = pareto_front(df.accuracy.tolist(), df.total_usd.tolist())
        df["pareto_latency"] = pareto_front(df.accuracy.tolist(), df.p95_s.tolist())
    known_u = df["uncertainty"].dropna().tolist() if not df.empty else []
    df.attrs.update(basis=used, why=why, same_within=(
        max([MIN_SAME, *known_u]) if used == "modelled" else SAME_COST))
    return df


def _row(v: Variant, used: str, queries: int, tune: float) -> dict:
    """One variant's cost numbers on the basis `used`; `tune`: its search's cost (NaN: none)."""
    price = v.mean("usd_per_hour", ("cost",))
    hardware = next((r.metrics.get("cost", {}).get("hardware") for r in v.runs
                     if r.metrics.get("cost")), None)
    known = [r.build_s for r in v.runs if not math.isnan(r.build_s)]
    measured_build = float(np.mean(known)) if known else math.nan
    modelled = has_model(v)
    row = {"variant": v.name, "strategy": v.strategy, "tuned": v.tuned,
           "hardware": hardware or "unpriced", "usd_per_hour": price,
           "measured_build_s": measured_build,
           "modelled_build_s": v.mean("modelled_build_s") if modelled else math.nan,
           "measured_seconds_per_query": v.mean("seconds_per_query"),
           "modelled_seconds_per_query": v.mean("modelled_seconds_per_query")
           if modelled else math.nan,
           "measured_p95_s": percentile(v.latency, 95),
           "modelled_p95_s": v.mean("modelled_latency_p95_s") if modelled else math.nan,
           "uncertainty": max(v.mean("build_uncertainty", ("modelled",)),
                              v.mean("predict_uncertainty", ("modelled",)))
           if modelled else math.nan,
           "artifact_bytes": v.mean("artifact_bytes", ("fit",)),
           "accuracy": v.estimate.mean}
    served = is_served(v)
    row["served"] = served
    for key in ("build_s", "seconds_per_query", "p95_s"):
        # a served variant has no modelled seconds: measured ones (its local build, the
        # endpoint's latency) whatever the basis
        row[key] = row[f"{'measured' if served else used}_{key}"]
    build, per_query = usd(row["build_s"], price), usd(row["seconds_per_query"], price)
    if served:  # its queries are priced by its requests (tokens, or the endpoint's hours)
        per_query = v.mean("usd_per_query")
    row.update({"retrain_usd": build, "tune_usd": tune,
                "build_usd": build if math.isnan(tune) else tune,
                "usd_per_1k": per_query * 1000, "usd_per_query": per_query})
    row["total_usd"] = row["build_usd"] + per_query * queries
    return row


def same_within(costs: pd.DataFrame) -> float:
    """The relative difference below which two costs of this frame count as equal."""
    return float(costs.attrs.get("same_within", SAME_COST))


def tie_reason(costs: pd.DataFrame) -> str:
    return ("inside the cost model's uncertainty (calibration repeat spread and fit)"
            if costs.attrs.get("basis") == "modelled" else "within timing noise")


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


def crossover(trained: pd.Series, base: pd.Series, same: float = SAME_COST) -> float:
    """Queries after which `trained`'s extra build cost is repaid (inf: never; nan: no price)."""
    return break_even(trained.build_usd, trained.usd_per_query, base.build_usd,
                      base.usd_per_query, same)


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
            n = crossover(t, b, same_within(costs))
            if math.isnan(n) or math.isinf(n):
                continue
            when = "at any volume" if n == 0 else f"from {math.ceil(n):,} queries on"
            lines.append(f"Cost crossover: {v.name} costs less in total than {bname} {when} "
                         f"(accuracy {t.accuracy:.3f} vs {b.accuracy:.3f}).")
    return lines
