"""The cost model's tables: measured vs modelled seconds with the contention check, and the
projection to target hardware (harness.cost.projection)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.cost import BUSY_SHARE
from harness.cost.projection import HOST_KINDS, Hardware, project_seconds, usd
from harness.report import fmt as f
from harness.report.tables import Table
from harness.report.variants import Variant
from harness.run_folders import Run

CONTENTION_FACTOR = 1.5  # measured / modelled beyond this (either way) is flagged
MIN_FLAG_S = 1.0  # phases shorter than this are not flagged: fixed overheads dominate them
BUSY = 0.1  # other processes' CPU share from which contention is the likely cause


@dataclass
class Check:
    variant: str
    seed: int
    phase: str  # build | predict
    measured: float
    modelled: float
    others: float | None  # other processes' CPU share meanwhile (None: unknown or cached)
    cached: bool

    @property
    def ratio(self) -> float:
        return self.measured / self.modelled if self.modelled > 0 else math.nan

    def flagged(self, factor: float) -> bool:
        return (max(self.measured, self.modelled) >= MIN_FLAG_S and not math.isnan(self.ratio)
                and (self.ratio > factor or self.ratio < 1 / factor))

    def words(self) -> str:
        head = (f"{self.variant} (seed {self.seed}) {self.phase}: measured "
                f"{f.seconds(self.measured)}, {self.ratio:.1f}× its modelled "
                f"{f.seconds(self.modelled)}")
        if self.ratio < 1:
            return (head + ": faster than its model, so the machine profile was probably "
                    "calibrated while the machine was busy (re-calibrate on an idle machine: "
                    "harness-calibrate cost.recalibrate=true)")
        if self.cached:
            return head + " (timed when it was first computed; a cache supplied it this time)"
        if self.others is not None and self.others >= BUSY:
            return (head + f"; other processes used {self.others:.0%} of the CPUs meanwhile: "
                    "likely contention, so its measured cost is inflated")
        return (head + "; other processes used little of the CPUs meanwhile"
                + (f" ({self.others:.0%})" if self.others is not None else "")
                + ", so the gap is work the model does not count (such as a first call's warm-up or "
                "Python overhead)")


def checks(variants: Sequence[Variant]) -> list[Check]:
    out = []
    for v in variants:
        for r in v.runs:
            m = r.metrics
            loads = m.get("others_cpu_share") or {}
            if m.get("modelled_build_s") is not None:
                out.append(Check(v.name, int(m.get("seed", 0)), "build", r.build_s,
                                 float(m["modelled_build_s"]), loads.get("fit"),
                                 bool((m.get("fit") or {}).get("cache_hit"))))
            if m.get("modelled_predict_s") is not None:
                out.append(Check(v.name, int(m.get("seed", 0)), "predict",
                                 float(m.get("predict_s", math.nan)),
                                 float(m["modelled_predict_s"]), loads.get("predict"),
                                 bool(m.get("prediction_cache_hits"))))
    return out


def busy_calibrations(variants: Sequence[Variant]) -> dict[str, float]:
    """Variant -> the largest share of the CPUs other processes used while a profile
    section behind its modelled seconds was calibrated, where above BUSY_SHARE."""
    out: dict[str, float] = {}
    for v in variants:
        for r in v.runs:
            sections = (((r.metrics.get("modelled") or {}).get("profile") or {})
                        .get("sections") or {})
            shares = [s.get("others_cpu_share") or 0.0 for s in sections.values()]
            if shares and max(shares) > BUSY_SHARE:
                out[v.name] = max(out.get(v.name, 0.0), max(shares))
    return out


def contention_lines(variants: Sequence[Variant], factor: float) -> list[str]:
    lines = []
    busy = busy_calibrations(variants)
    if busy:
        lines.append("**Machine profile calibrated on a busy machine**: other processes used "
                     "up to " + ", ".join(f"{share:.0%} ({name})" for name, share in busy.items())
                     + " of the CPUs while the profile behind these variants' modelled seconds "
                     "was measured, so its throughput is too low and their modelled seconds too "
                     "high. Re-calibrate on an idle machine (harness-calibrate "
                     "cost.recalibrate=true) and run them again into a new sweep directory (the "
                     "prediction and artifact caches make that quick).")
    flagged = [c for c in checks(variants) if c.flagged(factor)]
    if flagged:
        lines.append(f"**Timing check**: {len(flagged)} measured time(s) departed from the cost "
                     f"model by more than {factor:g}× — "
                     + "; ".join(c.words() for c in flagged) + ".")
    return lines


def cost_model_table(variants: Sequence[Variant], factor: float) -> Table | None:
    rows = []
    for c in checks(variants):
        rows.append({"variant": c.variant, "seed": c.seed, "phase": c.phase,
                     "measured": f.seconds(c.measured), "modelled": f.seconds(c.modelled),
                     "measured / modelled": f"{c.ratio:.2f}" if not math.isnan(c.ratio) else f.NA,
                     "other processes' CPU": f.share(c.others) if c.others is not None
                     and not c.cached else f.NA,
                     "flag": ("⚠ " + ("faster than modelled" if c.ratio < 1 else "slower than "
                                      "modelled")) if c.flagged(factor) else ""})
    if not rows:
        return None
    return Table("cost_model", "Measured and modelled seconds", pd.DataFrame(rows),
                 "Modelled = the run's counted work (harness.cost.work: FLOPs of every forward pass, "
                 "decode steps per batch size, training passes and optimizer steps, embeddings, "
                 "index searches) ÷ the throughput this machine reached for each kind in a "
                 "calibration (harness.cost.profile, cached per machine, model, dtype and threads; "
                 "the fastest of repeated timings). Other processes' CPU: the share of the "
                 "machine's CPU time used by other processes while the phase ran. A phase of "
                 f"{MIN_FLAG_S:g} s or more is flagged when measured and modelled differ by more "
                 f"than {factor:g}× (report.contention_factor).")


def _project_run(r: Run, hw: Hardware) -> tuple[float, float, float] | None:
    """(build seconds, predict seconds per query, p95 latency) of one run on `hw`."""
    m = r.metrics
    shape = m.get("model_shape")
    if not shape or m.get("build_work") is None or m.get("predict_work") is None:
        return None
    kinds = m.get("modelled") or {}

    def host(phase: str) -> float:
        return sum(v for k, v in (kinds.get(f"{phase}_by_kind") or {}).items() if k in HOST_KINDS)

    n = max(int(m.get("n_examples") or 0), 1)
    build = project_seconds(m["build_work"], shape, hw, host("build"))
    predict = project_seconds(m["predict_work"], shape, hw, host("predict"))
    per_item_host = host("predict") / n
    lat = [project_seconds((p.get("usage") or {}).get("work") or {}, shape, hw, per_item_host)
           for p in r.predictions()]
    return build, predict / n, float(np.percentile(lat, 95)) if lat else math.nan


def projection_table(variants: Sequence[Variant], hardware: Sequence[Hardware]) -> Table | None:
    if not hardware:
        return None
    rows = []
    for v in variants:
        for hw in hardware:
            got = [p for p in (_project_run(r, hw) for r in v.runs) if p is not None]
            if not got:
                rows.append({"variant": v.name, "hardware": hw.name, "build": f.NA,
                             "build cost": f.NA, "per 1k queries": f.NA, "p95 latency": f.NA})
                continue
            build, spq, p95 = (float(np.mean(x)) for x in zip(*got))
            rows.append({"variant": v.name, "hardware": hw.name,
                         "build": f.seconds(build), "build cost": f.usd(usd(build, hw)),
                         "per 1k queries": f.usd(usd(spq * 1000, hw)),
                         "p95 latency": f.seconds(p95)})
    sources = "; ".join(f"{hw.name}: {hw.peak_flops / 1e12:g} TFLOP/s bf16, "
                        f"{hw.mem_bandwidth / 1e9:g} GB/s, mfu {hw.mfu:g}, mbu {hw.mbu:g}, "
                        f"${hw.usd_per_hour:.2f}/h" for hw in hardware)
    return Table("projection", "Projected to other hardware (an estimate, not measured)",
                 pd.DataFrame(rows),
                 "A roofline estimate from each run's counted work (harness.cost.projection): "
                 "prefill, scoring, training and embedding at peak bf16 FLOP/s × mfu; each "
                 "decode step at the slower of its FLOPs and its bytes (weights + KV cache) at "
                 "bandwidth × mbu; AdamW at 28 bytes per trainable parameter per step; plus "
                 "kernel-launch time per layer and pass; vector search and BM25 stay on a host "
                 "CPU like this one. The hardware profiles are stated assumptions "
                 f"(conf/cost/hardware/): {sources}. Nothing here was run on that hardware.")
