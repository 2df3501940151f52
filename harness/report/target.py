"""The study projected to the model a team will deploy (report.project_model) on the hardware of
report.project_to: per variant, the smallest plan that fits one GPU or several, its
predicted peak memory per GPU, and the time and cost of the build and of queries
(harness.cost.target: the run's counted work rescaled to the target model)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.cost.projection import HOST_KINDS, Hardware, project_seconds, usd
from harness.cost.target import USABLE, Target, rescale, shape_of, smallest_fit
from harness.report import fmt as f
from harness.report.tables import Table
from harness.report.variants import Variant
from harness.run_folders import Run


def _with_factor(work: Mapping[str, float], factor: float) -> dict[str, float]:
    """Training FLOPs times `factor` (gradient checkpointing recomputes the forward pass)."""
    return {k: v * factor if k.startswith("train_flops/") else v for k, v in work.items()}


def project_run(r: Run, hw: Hardware, target: Target) -> dict | None:
    """One run on `target` and `hw`: the plan that fits (None: none does, or not recorded),
    its peak GB per GPU, GPUs, build seconds, seconds per query, p95 latency."""
    m = r.metrics
    src = m.get("model_shape")
    if not src or m.get("build_work") is None or m.get("predict_work") is None:
        return None
    dst, params = shape_of(target.dims), target.dims.params
    record = (m.get("memory") or {}).get("plan")
    fit = smallest_fit(record, target.dims, hw.memory_gb) if record and hw.memory_gb else None
    words, peak, factor, gpus = fit if fit else (None, math.nan, 1.0, 1)
    # a tuned model is served like an untuned one: on the GPUs its weights and batches need
    # (runs recorded before "serving" was: the weights alone, one item at a time)
    serve = record if not record or record.get("trains") == "none" else \
        {"trains": "none", **(record.get("serving") or {})}
    served = fit if serve is record else smallest_fit(serve, target.dims, hw.memory_gb) \
        if hw.memory_gb else None
    serving = served[3] if served else 1
    if fit and served and serving > 1 and record.get("trains") != "none":
        words = f"{words}; served on {serving} GPUs (weights split)"
    kinds = m.get("modelled") or {}

    def host(phase: str) -> float:
        return sum(v for k, v in (kinds.get(f"{phase}_by_kind") or {}).items() if k in HOST_KINDS)

    n = max(int(m.get("n_examples") or 0), 1)
    build = project_seconds(_with_factor(rescale(m["build_work"], src, dst, params), factor), dst, hw,
                            host("build")) / gpus
    predict = project_seconds(rescale(m["predict_work"], src, dst, params), dst, hw, host("predict"))
    lat = [project_seconds(rescale((p.get("usage") or {}).get("work") or {}, src, dst, params), dst, hw,
                           host("predict") / n) for p in r.predictions()]
    p95 = float(np.percentile(lat, 95)) / serving if lat else math.nan
    if record and hw.memory_gb and not fit:  # no plan fits: no time or cost to state
        build = math.nan
    if record and hw.memory_gb and not served:
        predict = p95 = math.nan
    return {"plan": words, "recorded": bool(record), "peak_gb": peak, "gpus": gpus,
            "serving": serving, "build": build, "per_query": predict / n / serving, "p95": p95}


def _plan_words(got: list[dict], hw: Hardware) -> str:
    if not hw.memory_gb:
        return f"not assessed ({hw.name} has no memory_gb)"
    if not all(g["recorded"] for g in got):
        return "not recorded (a run made before plans were recorded)"
    if any(g["plan"] is None for g in got):
        return f"does not fit 8 GPUs of {hw.memory_gb:g} GB"
    return got[0]["plan"]


def target_table(variants: Sequence[Variant], hardware: Sequence[Hardware],
                 target: Target | None) -> Table | None:
    if target is None or not hardware:
        return None
    rows, said = [], []
    for hw in hardware:
        parts = []
        for v in variants:
            got = [p for p in (project_run(r, hw, target) for r in v.runs) if p is not None]
            if not got:
                continue
            plan = _plan_words(got, hw)
            build, spq, p95, peak = (float(np.mean([g[k] for g in got]))
                                     for k in ("build", "per_query", "p95", "peak_gb"))
            gpus, serving = (max(g[k] for g in got) for k in ("gpus", "serving"))
            cost = usd(build, hw) * gpus  # NaN where nothing fits: n/a
            rows.append({"variant": v.name, "hardware": hw.name, "plan that fits": plan,
                         "peak per GPU": f"{peak:.1f} GB" if not math.isnan(peak) else f.NA,
                         "build": f.seconds(build), "build cost": f.usd(cost),
                         "per 1k queries": f.usd(usd(spq * 1000, hw) * serving),
                         "p95 latency": f.seconds(p95)})
            parts.append(f"{v.name} {plan}" + ("" if math.isnan(build) else
                                              f", {f.seconds(build)} to build, {f.usd(cost)}"))
        if parts:
            said.append(f"This study on {target.name} with {hw.name} "
                        f"({hw.memory_gb:g} GB): " + "; ".join(parts) + ".")
    if not rows:
        return None
    return Table("target", f"Projected to {target.name} ({target.dims.params / 1e9:.2f} B "
                 "parameters; an estimate, not measured)", pd.DataFrame(rows),
                 " ".join(said) + f" How: each run's counted work, rescaled to {target.name} "
                 f"({target.where}: same positions, passes and retrievals, that model's "
                 "parameters, layers, widths and KV heads; harness.cost.target), at the "
                 "hardware's roofline (the projection table's assumptions). Memory: the "
                 "memory model for that model on a GPU (bf16 inference, mixed-precision full "
                 "tuning with AdamW, LoRA on a bf16 base) with the run's batch, sequence length "
                 f"and choices; a plan fits at {USABLE:.0%} of one GPU's memory. Plans tried, "
                 "smallest first: as run; gradient checkpointing (training FLOPs x 4/3); QLoRA "
                 "(an adapter); FSDP over 2, 4, 8 GPUs (inference: weights split), with seconds "
                 "divided by the GPUs (ideal scaling, communication not counted) and cost for "
                 "all of them. A tuned model is served as the untuned one is, on the GPUs its weights "
                 "and batches need; where nothing fits, no time or cost is given.")
