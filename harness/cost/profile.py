"""The machine profile: what this machine achieves for each kind of work (harness.cost.work),
measured by a short calibration, cached per machine, model, dtype and thread count; and a
run's modelled seconds = its work / that throughput.

A stopwatch on a shared machine measures the machine's other tenants as much as the
strategy. Work counts do not move, and the profile is measured once, on the same model
and settings, taking the fastest of `repeats` timings of each shape: so the modelled
seconds of a run are the same however busy the machine was when it ran.

Per kind of work (measured by the app that runs the model: harness.run.calibration), a
linear model fitted by non-negative least squares on relative error over the calibration's
shapes (seconds per unit of each counter):
  forward      a * fwd_flops + b * fwd_attn_flops + c * fwd_calls
  decode/B     s_B * decode_steps/B          (measured at every batch size B a run uses)
  train/MODE   a * train_flops/MODE + c * train_passes/MODE     (MODE: full | frozen)
  optim        s * optim_params              (AdamW step, gradient clipping, zeroing)
  train_eval   a * train_eval_flops + c * train_eval_batches
  embed/NAME   a * embed_flops + c * embed_batches
  search       a * search_flops              (exact inner-product search, faiss)
  bm25         a * bm25_tokens + c * bm25_queries
Uncertainty of a kind: sqrt(repeat spread^2 + fit residual^2), both relative (repeat
spread: median / fastest - 1 over the repeats of a shape, worst shape); of a run's modelled
seconds: the seconds-weighted mean over the kinds it used. The report judges cost ties
against it.

    harness-calibrate [model=...] [embedder=...] [cost.recalibrate=true]   (ahead of a sweep)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from harness.cost import BUSY_SHARE
from harness.cost.work import Work
from harness.run_files import atomic_write_text
from harness.system import OtherLoad, machine_id

log = logging.getLogger(__name__)

PROFILE_FORMAT = 1

Point = tuple[Work, float, float]  # a calibration shape: work, fastest seconds, spread
# What calibrates: measure(section, repeats) -> {section: points} for that section (and any
# others the same measurement gives). The cost package runs no model itself; the caller
# that holds the model and the embedder passes one (harness.run.calibration.measurer).
Measure = Callable[[str, int], dict[str, list[Point]]]


@dataclass(frozen=True)
class Modelled:
    seconds: float
    uncertainty: float  # relative
    by_kind: dict[str, float]


def fit_linear(points: list[tuple[Mapping[str, float], float]],
               terms: list[str]) -> tuple[dict[str, float], float]:
    """Seconds per unit of each term, non-negative, minimising relative error; and the root
    mean square relative residual."""
    a = np.array([[p.get(t, 0.0) for t in terms] for p, _ in points], dtype=float)
    y = np.array([s for _, s in points], dtype=float)
    w = 1.0 / np.maximum(y, 1e-9)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-30)  # condition the columns
    from scipy.optimize import nnls  # scipy is slow to import: only when a profile is fitted

    coef, _ = nnls(a * w[:, None] / scale, y * w)
    coef = coef / scale
    resid = (a @ coef - y) / np.maximum(y, 1e-9)
    rms = float(np.sqrt(np.mean(resid ** 2))) if len(y) > len(terms) else 0.0
    return dict(zip(terms, coef.tolist())), rms


def _section(points: list[tuple[Work, float, float]], terms: list[str], load: OtherLoad,
             seconds: float) -> dict[str, Any]:
    coef, resid = fit_linear([(w, s) for w, s, _ in points], terms)
    spread = max(sp for _, _, sp in points)
    return {"coef": coef, "uncertainty": round(math.hypot(spread, resid), 4),
            "repeat_spread": round(spread, 4), "fit_residual": round(resid, 4),
            "points": [{"work": {t: w.get(t, 0.0) for t in terms}, "seconds": s}
                       for w, s, _ in points],
            "others_cpu_share": load.share, "calibration_s": round(seconds, 2),
            "calibrated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


TERMS = {
    "forward": ["fwd_flops", "fwd_attn_flops", "fwd_calls"],
    "train/frozen": ["train_flops/frozen", "train_passes/frozen", "train_adapter_elems"],
    "train/full": ["train_flops/full", "train_passes/full"],
    "optim": ["optim_params"],
    "trainer": ["train_runs", "train_steps/frozen", "train_steps/full"],
    "train_eval": ["train_eval_flops", "train_eval_batches"],
    "embed": ["embed_flops", "embed_batches"],
    "search": ["search_flops", "search_queries"],
    "bm25": ["bm25_tokens", "bm25_queries"],
    "train/4bit": ["train_flops/4bit", "train_passes/4bit", "train_steps/4bit"],
}

# Sections no calibration measures yet: work that needs one has no modelled seconds (the
# report then costs it from the stopwatch and says why).
UNCALIBRATED = {
    "train/4bit": "4-bit (QLoRA) training has no calibration: bitsandbytes' 4-bit kernels "
                  "run at their own speed, which the full-precision measurements do not give",
}


def section_of(counter: str, embedder: str | None) -> str | None:
    """The profile section a work counter is charged by (None: a count, not charged)."""
    if counter.startswith("decode_steps/"):
        return "decode/" + counter.split("/", 1)[1]
    for name, terms in TERMS.items():
        if counter in terms:
            return f"embed/{embedder}" if name == "embed" else name
    return None


def machine_quiet(seconds: float = 0.5) -> bool:
    """Are other processes leaving the CPUs alone right now?"""
    with OtherLoad() as load:
        time.sleep(seconds)
    return load.share is not None and load.share < BUSY_SHARE / 2


class MachineProfile:
    """One machine x model x dtype x threads; sections are calibrated when a run first
    needs them and kept in <cache>/profiles/<key>.json."""

    def __init__(self, path: Path, key: dict[str, Any], embedder: str | None = None) -> None:
        self.path, self.key, self.embedder = path, key, embedder
        self.sections: dict[str, dict[str, Any]] = {}
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") == PROFILE_FORMAT and data.get("key") == key:
                self.sections = data["sections"]

    @classmethod
    def open(cls, cache: Path, lm: Any, embedder: str | None = None,
             folder: str | Path | None = None) -> MachineProfile:
        """The profile for `lm` on this machine, in `folder` (cost.profile_dir) or, by default,
        in the cache's profiles/."""
        # The model by name and shape (speed depends on the architecture, not on the weights
        # or where a cache put them): a tuned copy of a model shares its base's profile.
        key = {"machine": machine_id(), "model": lm.name, "shape": dataclasses.asdict(lm.shape),
               "dtype": str(lm.model.dtype).removeprefix("torch."),
               "device": lm.device.type, "threads": torch.get_num_threads(),
               "format": PROFILE_FORMAT}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        where = Path(folder).expanduser() if folder else cache / "profiles"
        return cls(where / f"{digest}.json", key, embedder)

    def needed(self, work: Mapping[str, float]) -> set[str]:
        out = {section_of(k, self.embedder) for k, v in work.items() if v}
        return {s for s in out if s is not None}

    def missing(self, work: Mapping[str, float]) -> set[str]:
        return self.needed(work) - set(self.sections)

    def contended(self, work: Mapping[str, float]) -> dict[str, float]:
        """Sections `work` needs that were calibrated while other processes used more than
        BUSY_SHARE of the CPUs, with that share."""
        out = {}
        for name in self.needed(work):
            share = (self.sections.get(name) or {}).get("others_cpu_share")
            if share is not None and share > BUSY_SHARE:
                out[name] = share
        return out

    def ensure(self, work: Mapping[str, float], measure: Measure, repeats: int = 3,
               force: bool = False) -> float:
        """Calibrate the sections `work` needs that the profile lacks (all with `force`),
        and re-measure those calibrated on a busy machine when it is quiet now (the less
        contended measurement is kept); returns the seconds spent."""
        quiet = bool(self.contended(work)) and machine_quiet()
        if not (force or self.missing(work) or quiet):
            return 0.0
        t_all = time.perf_counter()
        with FileLock(str(self.path) + ".lock"):
            fresh = MachineProfile(self.path, self.key, self.embedder)  # another process's
            self.sections.update(fresh.sections)
            todo = self.needed(work) if force else self.missing(work)
            if quiet and not force:
                todo |= set(self.contended(work))
            todo -= set(UNCALIBRATED)
            done: set[str] = set()  # one measurement can fill several sections (training)
            for name in sorted(todo):
                if name not in done:
                    done |= self._calibrate(name, measure, repeats, replace=force)
            self.save()
        return time.perf_counter() - t_all

    def save(self) -> None:
        """Write the profile (atomically; callers that race hold its lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(
            {"format": PROFILE_FORMAT, "key": self.key, "sections": self.sections}, indent=1))

    def _calibrate(self, name: str, measure: Measure, repeats: int,
                   replace: bool = True) -> set[str]:
        """Measure section `name` (and any others the same measurement gives); returns the
        names of the sections measured."""
        log.info("calibrating the machine profile: %s (once per machine, model, dtype, threads)",
                 name)
        if name == "trainer":  # its points are net of the passes and steps: those first
            for need in ("train/frozen", "optim"):
                if need not in self.sections:
                    self._calibrate(need, measure, repeats)
        t0 = time.perf_counter()
        with OtherLoad() as load:
            new = measure(name, repeats)
        if name == "trainer":
            new = {"trainer": self._loop_points(new["trainer"])}
        seconds = time.perf_counter() - t0
        for sec, points in new.items():
            terms = TERMS.get(sec.split("/")[0] if sec.startswith("embed/") else sec) \
                or list(points[0][0])
            old = self.sections.get(sec)
            if not replace and old is not None and load.share is not None \
                    and (old.get("others_cpu_share") or 0.0) < load.share:
                continue  # the earlier measurement was made on a quieter machine
            self.sections[sec] = _section(points, terms, load, seconds)
            if sec == "trainer":  # the loop's cost per step does not depend on the mode
                coef = self.sections[sec]["coef"]
                coef["train_steps/full"] = coef["train_steps/frozen"]
        if load.share is not None and load.share > BUSY_SHARE:
            log.warning("other processes used %.0f%% of the CPUs while the profile (%s) was "
                        "calibrated: its throughput is likely too low. Re-calibrate on an idle "
                        "machine: harness-calibrate cost.recalibrate=true", 100 * load.share, name)
        return set(new)

    def _loop_points(self, runs: list[Point]) -> list[Point]:
        """The training loop's own seconds: each whole run's time less what the passes and
        optimizer steps in it take by the train/frozen and optim sections."""
        points = []
        for work, secs, spread in runs:
            passes = sum(work.get(k, 0.0) * self.sections[sec]["coef"][k]
                         for sec in ("train/frozen", "optim")
                         for k in TERMS[sec])
            points.append(({k: work[k] for k in ("train_runs", "train_steps/frozen")},
                           max(secs - passes, 1e-6), spread))
        return points

    def seconds(self, work: Mapping[str, float]) -> Modelled | None:
        """Modelled seconds of `work`; None when a section it needs is not calibrated."""
        if self.missing(work):
            return None
        by_kind: dict[str, float] = {}
        for k, v in work.items():
            sec = section_of(k, self.embedder)
            if sec is None or not v:
                continue
            by_kind[sec] = by_kind.get(sec, 0.0) + v * self.sections[sec]["coef"][k]
        total = sum(by_kind.values())
        unc = (sum(s * self.sections[k]["uncertainty"] for k, s in by_kind.items()) / total
               if total > 0 else 0.0)
        return Modelled(total, unc, by_kind)

    def describe(self, work: Mapping[str, float] | None = None) -> dict[str, Any]:
        """For metrics.json: the key and, per section used, its fit and how busy the machine
        was while it was calibrated."""
        names = sorted(self.needed(work)) if work is not None else sorted(self.sections)
        return {"path": str(self.path), "key": self.key,
                "sections": {n: {k: v for k, v in self.sections[n].items() if k != "points"}
                             for n in names if n in self.sections}}
