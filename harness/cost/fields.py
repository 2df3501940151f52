"""A run's work and modelled seconds (harness.cost.work, harness.cost.profile), for metrics.json.

The runner counts the work of fit and of predict (METER scopes) and notes how much of the
CPU other processes used meanwhile (harness.system.OtherLoad); this module prices that work
on the machine profile (calibrating what is missing, outside the run's timings) and returns
the fields the report's cost model reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.cost.profile import UNCALIBRATED, MachineProfile, Measure
from harness.cost.work import METER, add, flops
from harness.ranks import distributed, world
from harness.system import cache_root
from harness.types import Prediction

# `lm`: an in-process model (harness.models.local.LM: .model, .tokenizer, .shape,
# score_choices, generate); the cost package does not import the models package
LM = Any

_WARM: set[int] = set()


def warm_up(lm: LM) -> None:
    """One untimed, uncounted scoring pass and generation step, once per process and model:
    the first call in a process pays one-time set-up (memory pools, kernel selection) that
    would otherwise be charged to whichever run of a sweep happens to go first."""
    if id(lm.model) in _WARM:
        return
    _WARM.add(id(lm.model))
    text = " ".join(["The first call in a process sets up memory and kernels."] * 6)
    with METER.paused():
        for rows, words in ((16, 20), (16, 60), (4, 200)):
            ctx = [" ".join(text.split()[:words])] * rows
            lm._score_choices(ctx, [["a river", "the year 1907", "Maria"]] * rows,
                              batch_size=rows, progress=False)
        lm._generate(["Warm-up"] * 2, max_new_tokens=2, batch_size=2, progress=False)


def _rounded(work: Mapping[str, float]) -> dict[str, float]:
    return {k: (int(v) if float(v).is_integer() else float(f"{v:.6g}"))
            for k, v in sorted(work.items()) if v}


def measured_usage(preds: list[Prediction], predict_s: float) -> dict[str, float | int]:
    """Tokens, seconds and latency percentiles as the stopwatch measured them."""
    lat = np.array([p.usage.latency_s for p in preds]) if preds else np.zeros(1)
    return {
        "prompt_tokens": sum(p.usage.prompt_tokens for p in preds),
        "completion_tokens": sum(p.usage.completion_tokens for p in preds),
        "retrieval_s": sum(p.usage.retrieval_s for p in preds),
        "scoring_s": sum(p.usage.scoring_s for p in preds),
        "generation_s": sum(p.usage.generation_s for p in preds),
        # Per query: the wall time of the batches that answered it (what a caller waits).
        "latency_p50_s": float(np.percentile(lat, 50)),
        "latency_p95_s": float(np.percentile(lat, 95)),
        "latency_p99_s": float(np.percentile(lat, 99)),
        # Amortized: predict wall time / queries (what throughput costs per query).
        "seconds_per_query": predict_s / max(len(preds), 1),
    }


def run_cost_fields(cost_cfg: Mapping[str, Any], lm: LM, *, build_work: Mapping[str, float],
                    predict_work: Mapping[str, float], preds: Sequence[Prediction],
                    loads: Mapping[str, float | None], cache_dir: str | None,
                    embedder_name: str | None, measure: Measure) -> dict[str, Any]:
    """The work, FLOPs, modelled seconds and contention fields of a run's metrics;
    `measure` calibrates a profile section the run needs and the profile lacks."""
    n = max(len(preds), 1)
    out: dict[str, Any] = {
        "build_work": _rounded(build_work), "predict_work": _rounded(predict_work),
        "build_flops": flops(build_work), "predict_flops": flops(predict_work),
        "model_shape": dataclasses.asdict(lm.shape),  # what harness.cost.projection needs
        # share of the CPUs other processes used while fit / predict ran (None: unknown)
        "others_cpu_share": dict(loads),
        "modelled_build_s": None, "modelled_predict_s": None,
    }
    if distributed():
        out["modelled"] = {"off": f"trained by {world()[1]} data-parallel processes; the "
                                  "machine profile models one"}
        return out
    if not cost_cfg.get("model_time", True):
        out["modelled"] = {"off": "cost.model_time=false"}
        return out
    profile = MachineProfile.open(cache_root(cache_dir), lm, embedder=embedder_name,
                                  folder=cost_cfg.get("profile_dir"))
    every = add(add({}, build_work), predict_work)
    calibration_s = profile.ensure(every, measure,
                                   repeats=int(cost_cfg.get("calibration_repeats", 2)),
                                   force=bool(cost_cfg.get("recalibrate", False)))
    build, predict = profile.seconds(build_work), profile.seconds(predict_work)
    if build is None or predict is None:  # a section could not be calibrated
        missing = sorted(profile.missing(every))
        why = [UNCALIBRATED[m] for m in missing if m in UNCALIBRATED]
        out["modelled"] = {"off": "; ".join(why) or f"no profile for {missing}"}
        return out
    per_item = [profile.seconds(p.usage.work) for p in preds]
    lat = np.array([m.seconds for m in per_item if m is not None]) if preds else np.zeros(1)
    out.update({
        "modelled_build_s": build.seconds, "modelled_predict_s": predict.seconds,
        "modelled_seconds_per_query": predict.seconds / n,
        "modelled_latency_p50_s": float(np.percentile(lat, 50)) if lat.size else None,
        "modelled_latency_p95_s": float(np.percentile(lat, 95)) if lat.size else None,
        "modelled": {
            "build_uncertainty": build.uncertainty, "predict_uncertainty": predict.uncertainty,
            "build_by_kind": {k: round(v, 4) for k, v in build.by_kind.items()},
            "predict_by_kind": {k: round(v, 4) for k, v in predict.by_kind.items()},
            "calibration_s": round(calibration_s, 2),  # outside fit_s, predict_s and wall_s
            "profile": profile.describe(every),
        },
    })
    return out


def served_cost_fields(lm: Any, requests: Mapping[str, float], *, n_queries: int,
                       predict_s: float, prices: Mapping[str, Any],
                       preds: Sequence[Prediction]) -> dict[str, Any]:
    """A served model's run: what its requests were and cost. Per token (model.price
    input/output/cached_input_per_mtok, the server's usage counts) or per hour of a
    self-hosted endpoint (price_per_hour x the predict seconds the run measured at its
    concurrency); local work beside the requests (retrieval) is priced at this machine's
    rate. A served model has no modelled seconds: its time is the endpoint's, which this
    machine's profile does not describe."""
    price = lm.price
    n = max(n_queries, 1)
    tokens = {k: int(requests[k]) for k in ("input_tokens", "output_tokens", "cached_input_tokens")}
    local_s = sum(p.usage.retrieval_s for p in preds)
    local_usd = local_s / 3600 * prices["usd_per_hour"] if prices.get("usd_per_hour") else 0.0
    if price.per_token:
        cost, priced_by = price.usd(**tokens), "per token"
        per_query = (cost + local_usd) / n
    elif price.price_per_hour is not None:
        cost, priced_by = predict_s / 3600 * price.price_per_hour, "per hour"
        per_query = cost / n
    else:
        cost, priced_by, per_query = None, None, None
    return {
        "requests_sent": int(requests["requests_sent"]),
        "requests_cached": int(requests["requests_cached"]),
        "retries": int(requests["retries"]), **tokens,
        "cost_usd": cost, "usd_per_query": per_query, "priced_by": priced_by,
        "max_concurrency": lm.endpoint.settings.max_concurrency,
        "modelled_build_s": None, "modelled_predict_s": None,
        "modelled": {"off": f"served model ({lm.name} at {lm.base_url}): its seconds are the "
                            "endpoint's, not work this machine's profile can model; priced "
                            + (priced_by or "nowhere (model.price is empty)")},
    }
