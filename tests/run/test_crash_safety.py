"""SIGKILL at any stage of a run: no directory ever looks complete unless it is, the cache
survives, and re-running completes the run with the metrics an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.cache import problem
from harness.run_files import is_complete, run_status

RUN = ["model=tiny-random", "strategy=lora", "task.n_entities=30", "limit=10",
       "seen_eval_limit=10", "progress=false", "strategy.train.max_steps=12"]


def _run(run_dir: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.run.runner", *RUN, f"cache_dir={cache}",
         f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: m[k] for k in ("choice_accuracy", "n_examples", "split_hash")} | {
        "seen": m["seen"]["choice_accuracy"], "train_tokens": m["fit"]["train_tokens"]}


def _check_not_falsely_complete(run_dir: Path) -> str:
    status = run_status(run_dir)
    if status == "complete":  # only when everything it promises is on disk and readable
        assert is_complete(run_dir)
        lines = (run_dir / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 10 and all(json.loads(line)["id"] for line in lines)
    else:
        assert status in (None, "running")
    return str(status)


def test_sigkill_at_any_stage_never_leaves_a_falsely_complete_run(tmp_path):
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    assert _run(reference, tmp_path / "cache-ref").wait(timeout=300) == 0
    whole = time.monotonic() - t0
    expected = _metrics(reference)

    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    seen_states = []
    # kill later each time, at fractions of an uninterrupted run's time: during start-up,
    # model load, training, prediction, writing (a run after a kill may skip what the cache
    # kept, so the later kills land later in its work)
    for share in (0.15, 0.4, 0.65, 0.9, 1.15):
        proc = _run(run_dir, cache)
        try:
            proc.wait(timeout=share * whole)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        seen_states.append(_check_not_falsely_complete(run_dir))
        if seen_states[-1] == "complete":
            break
    assert "running" in seen_states  # at least one kill landed inside the run
    if not is_complete(run_dir):  # finish it after the last kill
        assert _run(run_dir, cache).wait(timeout=300) == 0
    assert _metrics(run_dir) == expected
    entries = [p for p in (cache / "artifacts").iterdir() if p.is_dir()]
    assert [p.name for p in entries if ".tmp-" in p.name] == []  # killed builds cleaned up
    assert entries and all(problem(p) is None for p in entries)
