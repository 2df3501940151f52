"""What a fair search costs (`make bench`, section "search"): an N-trial lora search
(experiment=fair, the same sampler seed, so the same N configs) three ways, each from an
empty cache:

    independent   the N configs as N plain runs scored on the test split (a grid sweep:
                  no validation, the pick made on the test split)
    search        the search without pruning or sharing: every run its own cache, so the
                  test run of the chosen trial trains it again
    search+       the search with the median pruner and one shared cache: pruned trials stop
                  early, and the test run reuses its trial's adapter

For each: trainings run, training steps computed (a cache hit computes none), the modelled
cost of the work done (builds that ran + predictions, at the run's price), wall seconds,
the trial chosen and its validation score. Counted, not timed: the ratios hold on a busy
machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.cost.prices import usd

# the bench's task: the quick preset's facts at 20 entities (80 questions; 32 train, 16
# validation, 32 test with experiment=fair's split), so that N lora trials take minutes
TASK = ["task.n_entities=20", "answer.generate=false", "progress=false"]


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness.run.runner", *args],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"bench search: {' '.join(args[:6])} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def _work(sweep: Path) -> dict:
    """What the runs of a folder computed: trainings that ran (not cache hits), their steps,
    and the modelled cost of that work (builds that ran + every run's predictions)."""
    trainings = steps = 0
    cost = 0.0
    for path in sorted(sweep.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        price = (m.get("cost") or {}).get("usd_per_hour")
        fit = m.get("fit") or {}
        if not fit.get("cache_hit"):
            trainings += 1
            steps += int((fit.get("notes") or {}).get("train_steps") or 0)
            cost += usd(m.get("modelled_build_s") or 0.0, price)
        cost += usd(m.get("modelled_predict_s") or 0.0, price)
    return {"trainings": trainings, "train_steps": steps, "modelled_usd": cost}


def _chosen(sweep: Path) -> tuple[int | None, float | None]:
    final = sweep / "lora_final" / "metrics.json"
    if not final.is_file():
        return None, None
    n = json.loads(final.read_text())["search"]["trial"]
    trial = json.loads((sweep / f"lora_trial{n:02d}" / "metrics.json").read_text())
    return n, trial[trial["primary_metric"]]


def bench_search(model_overrides: list[str], work: Path, trials: int = 8,
                 extra: tuple[str, ...] = ()) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model_cache = work / "model-cache"  # the converted model, shared: not what is measured
    base = ["-m", "experiment=fair", "strategy=lora", f"search.trials={trials}", *TASK,
            "search.final_seeds=1", "search.select=best",  # the trainings of the search alone
            *model_overrides, f"model.cache_dir={model_cache}", *extra]
    out: dict = {"trials": trials}
    plain = work / "search"  # every run its own cache: no sharing
    out["search_s"] = _run([*base, f"hydra.sweep.dir={plain}",
                            "cache_dir=${hydra:runtime.output_dir}/cache"])
    shared = work / "search_plus"
    out["search_plus_s"] = _run([*base, f"hydra.sweep.dir={shared}", "search.pruner=median",
                                 f"cache_dir={work / 'shared-cache'}"])
    independent = work / "independent"
    t0 = time.perf_counter()
    for n in range(trials):  # the same configs, as plain runs on the test split
        values = _overrides(plain / f"lora_trial{n:02d}")
        _run(["experiment=quick", "strategy=lora", *TASK, *model_overrides,
              f"model.cache_dir={model_cache}", "task.split_ratios=[0.4,0.2,0.4]", *values,
              *extra, f"hydra.run.dir={independent / f'run{n:02d}'}",
              f"cache_dir={independent / f'run{n:02d}' / 'cache'}"])
    out["independent_s"] = time.perf_counter() - t0
    for name, folder in (("independent", independent), ("search", plain), ("search_plus", shared)):
        for k, v in _work(folder).items():
            out[f"{name}_{k}"] = v
    for name, folder in (("search", plain), ("search_plus", shared)):
        n, val = _chosen(folder)
        out[f"{name}_chose_trial"], out[f"{name}_chosen_validation"] = n, val
    tests = {p.parent.name: json.loads(p.read_text()) for p in independent.glob("*/metrics.json")}
    best = max(tests, key=lambda k: tests[k][tests[k]["primary_metric"]])
    out["independent_chose_run_on_test"] = int(best.removeprefix("run"))
    out["search_plus_pruned"] = sum(
        bool((json.loads(p.read_text()).get("search") or {}).get("pruned"))
        for p in shared.glob("lora_trial*/metrics.json"))
    return out


def _overrides(trial_dir: Path) -> list[str]:
    """The searched values of a trial, as overrides of a plain run (from its config)."""
    import yaml

    cfg = yaml.safe_load((trial_dir / "config.yaml").read_text())
    s = cfg["strategy"]
    return [f"++per_strategy.lora.train.lr={s['train']['lr']}",
            f"++per_strategy.lora.train.epochs={s['train']['epochs']}",
            f"++per_strategy.lora.adapter.r={s['adapter']['r']}",
            f"++per_strategy.lora.adapter.alpha={s['adapter']['alpha']}",
            f"++per_strategy.lora.adapter.target_modules={s['adapter']['target_modules']}"]
