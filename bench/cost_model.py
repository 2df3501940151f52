"""The cost model (`make bench`, section "cost_model"): how long calibrating the machine
profile takes, and whether modelled seconds hold still when the machine is shared while
measured ones do not. The same two runs (prompt and rag on the built-in task, quick preset
sizes) are made on an idle machine and then with a CPU-bound process beside them, each
into its own cache with the profile of the first (prediction and artifact caches empty, so
the second is timed afresh)."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

RUN = ["-m", "experiment=quick", "progress=false"]
STRATEGIES = "strategy=prompt,rag"


def _spin() -> None:
    while True:
        pass


def _sweep(work: Path, cache: Path, model: list[str], extra: Sequence[str]) -> list[dict]:
    if not any(a.startswith("strategy=") for a in extra):
        extra = [STRATEGIES, *extra]
    args = [sys.executable, "-m", "harness.run.runner", *RUN, f"cache_dir={cache}",
            f"cost.profile_dir={cache / 'profiles'}", f"hydra.sweep.dir={work}", *model, *extra]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"the cost-model sweep failed:\n{res.stderr[-3000:]}")
    return [json.loads(p.read_text()) for p in sorted(work.glob("*/metrics.json"))]


def bench_cost_model(model: list[str], work: Path, extra: Sequence[str] = (),
                     profiles_from: Path | None = None) -> dict:
    """`extra`: harness-run overrides for the two sweeps (the bench's --sweep-args);
    `profiles_from`: machine profiles to start from (harness-calibrate then measures only
    the sections they lack; the test suite passes its own, already calibrated)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if profiles_from is not None and profiles_from.is_dir():
        shutil.copytree(profiles_from, work / "c1" / "profiles",
                        ignore=shutil.ignore_patterns("*.lock"))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness.run.calibrate_cli", *model,
                          f"cache_dir={work / 'c1'}", f"cost.profile_dir={work / 'c1' / 'profiles'}",
                          f"hydra.run.dir={work / 'calibrate'}"],
                         capture_output=True, text=True)
    calibrate_s = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"harness-calibrate failed:\n{res.stderr[-3000:]}")
    idle = _sweep(work / "idle", work / "c1", model, extra)
    shutil.copytree(work / "c1" / "profiles", work / "c2" / "profiles")
    hog = mp.Process(target=_spin, daemon=True)
    hog.start()
    try:
        busy = _sweep(work / "busy", work / "c2", model, extra)
    finally:
        hog.terminate()
    out: dict = {"calibrate_all_sections_s": calibrate_s}
    for a, b in zip(idle, busy):
        s = a["strategy"]
        out[f"{s} predict measured idle / busy s"] = f"{a['predict_s']:.2f} / {b['predict_s']:.2f}"
        out[f"{s} predict modelled idle / busy s"] = (f"{a['modelled_predict_s']:.2f} / "
                                                     f"{b['modelled_predict_s']:.2f}")
        out[f"{s} others' CPU share idle / busy"] = (f"{a['others_cpu_share']['predict']:.2f} / "
                                                    f"{b['others_cpu_share']['predict']:.2f}")
    out["measured_busy_over_idle"] = max(b["predict_s"] / a["predict_s"] for a, b in zip(idle, busy))
    out["modelled_busy_over_idle"] = max(
        max(b["modelled_predict_s"] / a["modelled_predict_s"],
            a["modelled_predict_s"] / b["modelled_predict_s"]) for a, b in zip(idle, busy))
    out["measured_over_modelled_idle"] = max(a["predict_s"] / a["modelled_predict_s"] for a in idle)
    return out
