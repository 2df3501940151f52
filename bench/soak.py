"""Soak test: a 30-run sweep on the tiny model with faults injected, checked at the end.

    python -m bench.soak [--kills 6] [--seed 0] [--out bench/out]     (or: make soak)

1. A clean reference sweep (its own cache): prompt, rag, lora, full, hybrid x seeds 0-5,
   where hybrid is given a mode that does not exist, so its 6 runs fail by design.
2. The same sweep again in a fresh directory and cache, with faults: the whole sweep is
   killed with SIGKILL at random moments, a random cache file is corrupted (a byte flipped
   or the file truncated) after every kill, and the sweep is re-invoked until it finishes.
3. Checks: every run is complete with the reference's metrics and predictions, or is one of
   the failing-by-design runs recorded as failed; no run that was complete before a kill
   was changed or lost afterwards.

Prints a table of figures and writes them to <out>/soak.json. Exit status 1 on any
violation. Not part of the test suite (it takes a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

SWEEP = ["strategy=prompt,rag,lora,full,hybrid", "seed=0,1,2,3,4,5", "model=tiny-random",
         "task.n_entities=30", "limit=12", "seen_eval_limit=12", "progress=false",
         "+per_strategy.lora.train.max_steps=6", "+per_strategy.full.train.max_steps=6",
         "+per_strategy.hybrid.mode=no-such-mode"]
FAILING = "hybrid"


def sweep_cmd(sweep_dir: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "harness.run.runner", "-m", *SWEEP, f"cache_dir={cache}",
            f"hydra.sweep.dir={sweep_dir}"]


def snapshot(sweep_dir: Path) -> dict[str, dict]:
    """Run name -> what it holds now (status, finish time, metrics, predicted choices)."""
    out = {}
    for m in sorted(sweep_dir.glob("*/metrics.json")):
        try:
            metrics = json.loads(m.read_text())
        except (OSError, ValueError):
            out[m.parent.name] = {"status": "unreadable"}
            continue
        entry = {"status": metrics.get("status"), "finished_at": metrics.get("finished_at")}
        if metrics.get("status") == "complete":
            preds = m.parent / "predictions.jsonl"
            entry["choices"] = [json.loads(line)["choice"]
                                for line in preds.read_text().splitlines()]
            entry["metrics"] = {k: metrics.get(k) for k in
                                ("choice_accuracy", "recall_at_k", "mrr", "n_examples")}
            entry["seen"] = (metrics.get("seen") or {}).get("choice_accuracy")
        out[m.parent.name] = entry
    return out


def corrupt_random_file(cache: Path, rng: random.Random) -> str | None:
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")
             and p.stat().st_size > 16]
    if not files:
        return None
    target = rng.choice(sorted(files))
    data = bytearray(target.read_bytes())
    if rng.random() < 0.5:
        target.write_bytes(bytes(data[: len(data) // 2]))
        how = "truncated"
    else:
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        how = "byte flipped"
    return f"{target.relative_to(cache)} ({how})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs to inject")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.out / f"soak-{int(time.time())}"
    work.mkdir(parents=True)
    t0 = time.time()

    print("reference sweep (no faults) ...", flush=True)
    ref_dir = work / "reference"
    res = subprocess.run(sweep_cmd(ref_dir, work / "cache-ref"), capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr[-3000:])
        return 1
    reference = snapshot(ref_dir)
    ref_s = time.time() - t0

    sweep_dir, cache = work / "faulty", work / "cache-faulty"
    cmd = sweep_cmd(sweep_dir, cache)
    kills, corruptions, invocations, lost, events = 0, [], 0, [], []
    finished = False
    while not finished and invocations < args.kills + 10:
        invocations += 1
        before = {k: v for k, v in snapshot(sweep_dir).items() if v["status"] == "complete"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        if kills < args.kills:
            delay = rng.uniform(4.0, 25.0)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                events.append(f"kill {kills} after {delay:.1f} s")
        else:
            proc.wait()
        finished = proc.returncode == 0
        after = snapshot(sweep_dir)
        for name, entry in before.items():  # nothing finished may be lost or changed
            if after.get(name) != entry:
                lost.append(name)
        if not finished:
            what = corrupt_random_file(cache, rng)
            if what:
                corruptions.append(what)
                events.append(f"corrupted {what}")
        print(f"  invocation {invocations}: {'finished' if finished else 'killed'}; "
              f"{sum(v['status'] == 'complete' for v in after.values())} runs complete",
              flush=True)

    final = snapshot(sweep_dir)
    wrong, not_done, failed_ok = [], [], 0
    for name, ref in reference.items():
        got = final.get(name)
        if name.split("_")[1] == FAILING:
            if got and got["status"] == "failed" and ref["status"] == "failed":
                failed_ok += 1
            else:
                wrong.append(name)
            continue
        if got is None or got["status"] != "complete":
            not_done.append(name)
        elif (got["metrics"], got["choices"], got["seen"]) != (
                ref["metrics"], ref["choices"], ref["seen"]):
            wrong.append(name)
    figures = {
        "runs": len(reference), "completed": sum(v["status"] == "complete" for v in final.values()),
        "failed_by_design_and_recorded": failed_ok, "sigkills": kills,
        "cache_files_corrupted": len(corruptions), "invocations": invocations,
        "sweep_finished": finished, "results_lost": len(lost), "wrong_metrics": len(wrong),
        "not_completed": len(not_done), "reference_sweep_s": round(ref_s, 1),
        "total_s": round(time.time() - t0, 1),
    }
    (work / "soak.json").write_text(json.dumps({**figures, "events": events, "lost": lost,
                                                "wrong": wrong, "not_done": not_done}, indent=2))
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    print(f"details: {work / 'soak.json'}")
    ok = finished and not lost and not wrong and not not_done and failed_ok == sum(
        1 for n in reference if n.split("_")[1] == FAILING)
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
