"""Sweep progress: "run i of N", elapsed time and an ETA at the start of every run.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks), so it works with
every launcher: the sweep's size is counted once in the launching process and written to
<sweep dir>/sweep.json; each run, in whatever process it lands, reads it and counts the
run directories already finished.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.run_files import STATUS_COMPLETE, STATUS_FAILED, read_json, run_status, write_json

log = logging.getLogger("harness.sweep")

SWEEP_FILE = "sweep.json"


def count_runs(sweeper_params: dict[str, Any], overrides: list[str]) -> int:
    """Runs of a basic-sweeper multirun: the product of the sweep lengths per key, the
    command line replacing a key's `hydra.sweeper.params` value (as Hydra does)."""
    parser = OverridesParser.create()
    args = [f"{k}={v}" for k, v in sweeper_params.items()] + list(overrides)
    lengths: OrderedDict[str, int] = OrderedDict()
    for o in parser.parse_overrides(args):
        key = o.get_key_element()
        if o.is_discrete_sweep():  # a,b,c | choice(...) | range(...)
            lengths[key] = len(list(o.sweep_string_iterator()))
        elif o.is_sweep_override():  # interval(): only other sweepers take it
            raise ValueError(f"cannot count the values of {key}")
        else:
            lengths[key] = 1
    return math.prod(lengths.values()) if lengths else 1


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def describe(sweep_dir: Path, job_num: int, name: str = "",
             now: float | None = None) -> str | None:
    """The progress line for the run numbered job_num (0-based), or None outside a sweep."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return None
    info = read_json(path)
    total, started = int(info["total"]), float(info["started_at"])
    now = time.time() if now is None else now
    done = finished_now = 0
    for metrics in sweep_dir.glob("*/metrics.json"):
        if run_status(metrics.parent) in (STATUS_COMPLETE, STATUS_FAILED):
            done += 1
            finished_now += metrics.stat().st_mtime >= started
    elapsed = now - started
    line = (f"run {job_num + 1} of {total}{f' ({name})' if name else ''}: {done} finished, "
            f"elapsed {_fmt(elapsed)}")
    remaining = max(total - done, 0)
    if finished_now:
        line += f", ETA {_fmt(elapsed / finished_now * remaining)}"
    else:
        line += ", ETA after the first run ends"
    return line


class SweepProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        params = dict(config.hydra.sweeper.get("params") or {})
        try:
            total = count_runs(params, list(config.hydra.overrides.task))
        except Exception as e:  # a sweeper we cannot count for: no progress, no failure
            log.warning("cannot count the runs of this sweep (%s); no ETA", e)
            return
        write_json(sweep_dir / SWEEP_FILE, {"total": total, "started_at": time.time()})
        log.info("sweep of %d runs -> %s", total, sweep_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            hc = HydraConfig.get()
            line = describe(Path(hc.sweep.dir), int(hc.job.num), Path(hc.runtime.output_dir).name)
        except Exception:  # single runs (no sweep dir) and unreadable files: stay quiet
            return
        if line:
            log.info("%s", line)
