"""`harness-run`: one Hydra run = one (task, model, strategy, seed) -> one run directory.

`main` is the thin Hydra entry point; `run(cfg, run_dir)` does the work and is what
tests call. The runner reaches a strategy only through `hydra.utils.instantiate`.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import logging
import random
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from harness.answering import choice_method
from harness.cost.fields import run_cost_fields, served_cost_fields, warm_up
from harness.cost.prices import run_prices
from harness.cost.work import METER
from harness.data import build_task
from harness.data.update import build_update
from harness.errors import ConfigError, UserError, full_errors
from harness.models import LanguageModel, get_lm, is_loaded, is_served, model_label
from harness.models.prediction_cache import CACHE_METER
from harness.ranks import agree, from_slurm, is_main, main_first, world
from harness.retrieval import get_embedder
from harness.retrieval.embedder import loaded_embedders
from harness.run.calibration import measurer
from harness.run.compose import (
    config_text,
    effective_config,
    import_libraries,
    same_config,
    strategy_factory,
)
from harness.run.freshness import run_freshness
from harness.run.memory import Loaded, mark_peak, run_memory
from harness.run.memory_check import check_fits
from harness.run.outcome import Predicted, prediction_rows, record_fields, score_items
from harness.run.slurm import explain, slurm_job
from harness.run_files import (
    STATUS_FAILED,
    STATUS_RUNNING,
    atomic_write_text,
    is_complete,
    read_json,
    write_json,
    write_jsonl,
)
from harness.run_record import primary_metric
from harness.scoring.free_form import scorer_from_config
from harness.search.trial import search_fields, trial_pruning, trial_reporter
from harness.system import (
    OtherLoad,
    cache_root,
    config_dir,
    dtype_reason,
    reset_peak_memory,
    versions,
)
from harness.tracking import TrackingSettings, track_run
from harness.types import FitReport, Strategy, Task

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Execute one run and write its directory; returns metrics. A failure is recorded
    in metrics.json (status 'failed', error, traceback) and then re-raised. Under several
    processes (harness.ranks) only rank 0 does this; the others train with it and return."""
    if not is_main():
        return _follow(cfg)
    run_dir = Path(run_dir) if run_dir else Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = effective_config(cfg)
    tracking = tracking_settings(cfg)
    base = {
        "status": STATUS_RUNNING,
        "strategy": cfg.strategy.name,
        "task": cfg.task.name,
        "model": model_label(cfg.model),
        "seed": int(cfg.seed),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "slurm_job": slurm_job(),  # None outside Slurm
    }
    for name in ("predictions.jsonl", "predictions_seen.jsonl", "predictions_fresh.jsonl"):
        (run_dir / name).unlink(missing_ok=True)  # never mix with an older attempt
    write_json(run_dir / "metrics.json", base)
    atomic_write_text(run_dir / "config.yaml", config_text(cfg))
    try:
        metrics = _execute(cfg, run_dir, base)
    except BaseException as e:
        write_json(run_dir / "metrics.json", {
            **base, "status": STATUS_FAILED, "error": explain(e) or f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        track_run(tracking, run_dir)  # a failed run is tracked as failed
        raise
    track_run(tracking, run_dir)
    return metrics


def tracking_settings(cfg: DictConfig) -> TrackingSettings:
    """tracking.* (conf/tracking/), checked before any work: a missing client fails now."""
    block = cfg.get("tracking")
    settings = TrackingSettings.from_config(
        OmegaConf.to_container(block, resolve=True) if block is not None else None,
        str(cfg.get("results_dir") or "results"))
    settings.check()
    return settings


def _setup(cfg: DictConfig, pruning=None) -> tuple[Task, Any, LanguageModel, Strategy, Loaded]:
    """Threads, seed, the task (and its update), the model, the strategy, and how loading
    went: the seconds loading the model took (0 when this process had it already; the first
    load of the bundled model includes its one-time conversion) and the memory in use before,
    the strategy's libraries imported (the run's peak memory is measured from it). Under
    several processes rank 0 loads first, filling the caches the others then read."""
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    seed_everything(int(cfg.seed))
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    fresh_cfg = cfg.get("freshness") or {}
    make_strategy = strategy_factory(cfg, pruning=pruning)
    import_metric_modules(cfg.get("metrics") or [])
    import_libraries(cfg)
    baseline_mb = reset_peak_memory()
    embedders = set(loaded_embedders())
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if not is_served(model_cfg) and (cfg.get("memory") or {}).get("check", True):
        check_fits(model_cfg, OmegaConf.to_container(cfg.strategy, resolve=True))
    with main_first():
        t0 = time.perf_counter()
        fresh = not is_loaded(model_cfg)
        lm = get_lm(model_cfg)
        loaded = Loaded(time.perf_counter() - t0, baseline_mb, fresh, frozenset(embedders))
        # The strategy first: one that cannot run on this model (a tuned one on a served
        # model) says so before the task is read.
        lm.cache = (cache_root(cfg.get("cache_dir")) / "predictions"
                    if cfg.get("prediction_cache", True) else None)
        strategy = make_strategy(lm)
        task = build_task(task_cfg, resolve_path=to_absolute_path, progress=bool(cfg.progress))
        # Built before anything is fit, so a bad second version fails the run at once.
        change = (build_update(task_cfg, task, resolve_path=to_absolute_path)
                  if fresh_cfg.get("enabled") else None)
    return task, change, lm, strategy, loaded


def import_metric_modules(modules: list[str]) -> None:
    """`metrics=[mymodule, ...]`: modules whose harness.run_record.register_metric calls add
    per-item metrics to every run (importable from where harness-run starts)."""
    for name in modules:
        try:
            importlib.import_module(str(name))
        except ImportError as e:
            raise ConfigError(f"metrics: cannot import '{name}' ({e}); a metric module must be "
                              "importable from the directory harness-run starts in") from None


def _follow(cfg: DictConfig) -> dict[str, Any]:
    """A rank other than 0: the run's steps through fit (training is collective); rank 0
    predicts and writes everything."""
    cfg = effective_config(cfg)
    if (cfg.get("freshness") or {}).get("enabled"):
        raise ConfigError("freshness.enabled=true runs in one process only; launch it "
                          "without accelerate launch / several tasks")
    task, _, _, strategy, _ = _setup(cfg)
    fit = strategy.fit(task)
    return {"status": "rank", "rank": world()[0], "fit_s": fit.wall_s}


def _execute(cfg: DictConfig, run_dir: Path, base: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    prices = run_prices(OmegaConf.to_container(cfg.cost, resolve=True))
    reporter = trial_reporter(cfg, run_dir)
    task, change, lm, strategy, loaded = _setup(cfg, trial_pruning(reporter))
    base["model_load_s"] = loaded.seconds
    scorer = scorer_from_config(cfg, _config_search_dirs())  # loads the judge, if any
    if scorer.judge_lm is not None:
        scorer.judge_lm.cache = lm.cache
    peaks = {"load": mark_peak()}  # measured per phase: the model, the task, the strategy
    # its warm-up's transient memory, like its time, is set-up: charged to no phase
    _describe_model(lm, base, str(cfg.model.get("dtype", "float32")))
    mark_peak()
    log.info("fit %s on %s", strategy.name, task.name)
    with METER.scope() as build_work, OtherLoad() as fit_load:
        fit: FitReport = strategy.fit(task)
    peaks["fit"] = mark_peak()
    run = _predict(cfg, strategy, task, lm)
    peaks["predict"] = mark_peak()
    items = score_items(strategy, run.examples, run.preds)
    free_form, details = scorer.score(run.examples, run.preds, items, cites=strategy.cites,
                                      doc_text={d.id: d.text for d in task.corpus})
    write_jsonl(run_dir / "predictions.jsonl",
                prediction_rows(run.examples, run.preds, items, strategy, details, task))
    metrics = {**base, **record_fields(cfg, task, strategy, fit, run, items, free_form, run_dir),
               "cost": prices,  # the prices the report turns seconds and tokens into money with
               "peak_mem_mb": max(peaks.values()), "wall_s": time.perf_counter() - t_start}
    metrics["memory"] = run_memory(cfg, lm, strategy, fit, run, loaded, peaks)
    if metrics["choice_accuracy"] is not None:  # how the choices were scored
        metrics["scoring_method"], metrics["scoring_method_reason"] = choice_method(
            lm, str(cfg.answer.choice_scoring))
    # after wall_s: a first calibration is not the run's time
    metrics.update(_cost_fields(cfg, lm, run, build_work=build_work, fit_share=fit_load.share,
                                prices=prices))
    metrics["primary_metric"] = primary_metric(metrics, any(e.choices for e in run.examples))
    metrics["search"] = search_fields(cfg, fit)
    metrics["freshness"] = None  # the update scenario (freshness.enabled=true)
    if change is not None:  # last, and outside wall_s and peak memory: updates change the strategy
        t0 = time.perf_counter()
        metrics["freshness"] = run_freshness(
            strategy, task, change, eval_split=cfg.eval_split,
            limit=int(cfg.limit) if cfg.get("limit") else None,
            tuned_modes=list((cfg.get("freshness") or {}).get("tuned_modes") or ()),
            run_dir=run_dir)
        metrics["freshness_s"] = time.perf_counter() - t0
        metrics["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(run_dir / "metrics.json", metrics)
    if reporter is not None:
        reporter.finish(metrics)
    log.info("%s: %s=%.3f  (%d examples, predict %.1f s) -> %s", strategy.name,
             metrics["primary_metric"], _or_nan(metrics[metrics["primary_metric"]]),
             len(run.examples), run.predict_s, run_dir)
    return metrics


def _describe_model(lm: LanguageModel, base: dict[str, Any], requested: str) -> None:
    """What the run records of its model, into `base`; an in-process model is warmed up."""
    if lm.where == "served":
        base["served"] = lm.describe()  # the endpoint and its price (never the key's value)
    else:
        warm_up(lm)  # untimed: a sweep's first run is not charged the process's set-up
        base["dtype"] = str(lm.model.dtype).removeprefix("torch.")  # what model.dtype resolved to
        base["dtype_why"] = dtype_reason(requested, lm.device)


def _predict(cfg: DictConfig, strategy: Strategy, task: Task, lm: LanguageModel) -> Predicted:
    examples = task.split(cfg.eval_split)
    if cfg.get("limit"):
        examples = examples[: int(cfg.limit)]
    log.info("predict %d %s examples", len(examples), cfg.eval_split)
    served = lm.where == "served"
    meter = dataclasses.replace(CACHE_METER)
    before = lm.meter.copy() if served else None
    t0 = time.perf_counter()
    with METER.scope() as work, OtherLoad() as load:
        preds = strategy.predict(examples)
    wall = time.perf_counter() - t0
    # Charged like a cached build: what the predictions took when they were computed.
    predict_s = wall + (CACHE_METER.saved_s - meter.saved_s)
    requests = lm.meter.minus(before) if served else None
    if requests:  # cached responses: their recorded seconds, overlapped at max_concurrency
        predict_s += requests["cached_seconds"] / lm.endpoint.settings.max_concurrency
    if [p.example_id for p in preds] != [e.id for e in examples]:
        raise RuntimeError(f"strategy '{strategy.name}' returned predictions out of order or "
                           f"of the wrong length ({len(preds)} for {len(examples)} examples)")
    return Predicted(examples, preds, predict_s, wall, work, load.share,
                      CACHE_METER.hits - meter.hits, requests)


def _cost_fields(cfg: DictConfig, lm: LanguageModel, run: Predicted, *,
                 build_work: dict[str, float], fit_share: float | None,
                 prices: dict[str, Any]) -> dict[str, Any]:
    """A served model's requests and price, or an in-process model's work and modelled
    seconds (harness.cost.fields)."""
    if run.requests is not None:
        return served_cost_fields(lm, run.requests, n_queries=len(run.examples),
                                  predict_s=run.predict_s, prices=prices, preds=run.preds)
    return run_cost_fields(
        cfg.cost, lm, build_work=build_work, predict_work=run.work, preds=run.preds,
        loads={"fit": fit_share, "predict": run.others_share},
        cache_dir=cfg.get("cache_dir"), embedder_name=str(cfg.embedder.name_or_path),
        measure=measurer(lm, partial(get_embedder,
                                     OmegaConf.to_container(cfg.embedder, resolve=True))))


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


CONF_DIR = config_dir()


def _config_search_dirs() -> list[Path]:
    """Where model/<name>.yaml is looked up (judge=<name>): a user's --config-dir first."""
    dirs = [CONF_DIR]
    if HydraConfig.initialized():
        dirs = [Path(s.path) for s in HydraConfig.get().runtime.config_sources
                if s.schema == "file"] + dirs
    return list(dict.fromkeys(dirs))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    # A strategy or task in the user's own module (`_target_: mymodule.MyStrategy`) is
    # importable from the directory harness-run was started in, as with `python -m`.
    if hc.runtime.cwd not in sys.path:
        sys.path.append(hc.runtime.cwd)
    from_slurm()  # a Slurm job of several tasks: one rank each
    try:
        cfg = effective_config(cfg)  # run() would do it too; once here serves the skip check
        if agree(is_complete(run_dir) and same_config(run_dir, cfg)):  # rank 0's run dir
            log.info("skipping %s: already complete with this config", run_dir)
            if is_main():  # tracked if it was not (a tracker that was down): no duplicate
                track_run(tracking_settings(cfg), run_dir)
            metrics = read_json(run_dir / "metrics.json")
            return metrics.get(metrics.get("primary_metric", ""))
        metrics = run(cfg, run_dir)
    except UserError as e:
        if full_errors():
            raise
        # The user's to fix (a data file, a config value): one line, no traceback.
        if hc.mode != RunMode.MULTIRUN:
            print(f"harness-run: error: {e}", file=sys.stderr)
            sys.exit(2)
        log.error("run %s failed: %s; continuing the sweep", run_dir, e)
        return None
    except Exception:
        if hc.mode != RunMode.MULTIRUN:
            raise
        # One bad run must not end a sweep: it is recorded as failed in its metrics.json
        # (error and traceback) and the report lists it; the other runs go on.
        log.exception("run %s failed; continuing the sweep", run_dir)
        return None
    return metrics.get(metrics.get("primary_metric", ""))  # a rank > 0: None


def main() -> None:
    rank, size = world()
    if size > 1 and any(a in ("-m", "--multirun") for a in sys.argv[1:]):
        sys.exit("harness-run: error: a sweep (-m) cannot run under a multi-process launcher: "
                 "launch one run per `accelerate launch`, or sweep with launcher=slurm and "
                 "hydra.launcher.tasks_per_node=N (docs/clusters.md: Several processes, GPUs and nodes)")
    if rank > 0:  # only rank 0 writes: Hydra's own files of other ranks go to a temp folder
        tmp = tempfile.mkdtemp(prefix=f"harness-rank{rank}-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        sys.argv += [f"hydra.run.dir={tmp}", "hydra.output_subdir=null",
                     "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    _hydra_main()


if __name__ == "__main__":
    main()
