"""What an MLflow run holds for one run folder, and logging it through the mlflow client.

- params: the flattened resolved config (config.yaml);
- metrics: every number of metrics.json by its path ('fit.forgetting.control_perplexity_
  delta', 'modelled_build_s', ...), each per-item metric's 95% bootstrap interval
  ('<metric>.ci_low/high', as the report computes it), latency p50/p95 per query, and the
  costs in USD at the run's price, measured and modelled ('usd.build.modelled',
  'usd.per_1k_queries.measured', ...);
- tags: strategy, variant label, status, task, model, config hash, the run folder;
- artifacts: predictions*.jsonl, metrics.json, config.yaml.

The sweep is one MLflow run (tag adaptbench.kind=sweep), the runs its children
(mlflow.parentRunId). A run is found again by its config hash; `adaptbench.logged` holds
the status and finish time last logged, so an unchanged run is not written twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from filelock import FileLock

from harness.cost.prices import usd
from harness.run_files import STATUS_COMPLETE, STATUS_FAILED, read_json
from harness.run_folders import Run, flatten, known_metrics, read_runs
from harness.stats import bootstrap_ci
from harness.tracking.settings import TrackingSettings, config_hash, sweep_dir_of

TAG = "adaptbench."
ARTIFACTS = ("predictions.jsonl", "predictions_seen.jsonl", "predictions_fresh.jsonl",
             "metrics.json", "config.yaml")
# numbers that are not results: versions, the seed, the machine profile and model shape
# the modelled seconds came from (metrics.json keeps them)
NOT_METRICS = ("versions", "metric_info", "slurm_job", "seed", "modelled.profile", "model_shape")
MAX_PARAM = 6000  # MLflow's limit on a param value's length
MAX_KEY = 250


def _key(name: str) -> str:
    """A name MLflow accepts (letters, digits, _ - . / and space)."""
    return re.sub(r"[^\w\-./ ]", "_", name)[:MAX_KEY]


def _numbers(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if f"{prefix}{k}" in NOT_METRICS:
                continue
            out.update(_numbers(v, f"{prefix}{k}."))
    elif isinstance(d, int | float) and not isinstance(d, bool) and math.isfinite(d):
        out[prefix.rstrip(".")] = float(d)
    return out


def _usd(metrics: dict[str, Any]) -> dict[str, float]:
    """The run's costs in USD at its recorded price per hour, measured and modelled: the
    build, and 1,000 queries (a served model: its requests' own price per query)."""
    price = (metrics.get("cost") or {}).get("usd_per_hour")
    out = {}
    for basis, prefix in (("measured", ""), ("modelled", "modelled_")):
        build = usd(metrics.get(f"{prefix}build_s"), price)
        per_query = usd(metrics.get(f"{prefix}seconds_per_query"), price)
        if basis == "measured" and isinstance(metrics.get("usd_per_query"), int | float):
            per_query = float(metrics["usd_per_query"])
        for name, value in ((f"usd.build.{basis}", build),
                            (f"usd.per_1k_queries.{basis}", per_query * 1000)):
            if math.isfinite(value):
                out[name] = value
    return out


def sweep_labels(sweep_dir: Path) -> dict[Path, str]:
    """Run folder (resolved) -> the variant label the report gives it among its sweep's runs."""
    return {r.path.resolve(): r.variant for r in read_runs([sweep_dir])}


def run_content(run_dir: Path, metrics: dict[str, Any], config: dict[str, Any],
                variant: str | None = None
                ) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(params, metrics, tags) of one run folder; `variant`: its label when the caller has
    its sweep's labels already (else they are read here)."""
    flat = flatten(config)
    params = {_key(k): str(v)[:MAX_PARAM] for k, v in flat.items()
              if v is not None and not k.startswith("tracking.")}  # where it went, not what it is
    numbers = {_key(k): v for k, v in _numbers(metrics).items()}
    numbers.update(_usd(metrics))
    run = Run(run_dir, metrics, flat)
    sweep = sweep_dir_of(run_dir)
    if variant is None and sweep is not None:
        variant = sweep_labels(sweep).get(run_dir.resolve())
    variant = variant or metrics.get("strategy") or "?"
    if metrics.get("status") == STATUS_COMPLETE and (run_dir / "predictions.jsonl").is_file():
        for name in known_metrics([run]):
            if not isinstance(metrics.get(name), int | float):
                continue
            scores = run.items(name).score.dropna().to_numpy(float)
            if scores.size:
                est = bootstrap_ci(scores[None, :])
                numbers[_key(f"{name}.ci_low")], numbers[_key(f"{name}.ci_high")] = est.low, est.high
        latency = run.items().latency_s.dropna().to_numpy(float)
        if latency.size and "latency_p95_s" not in numbers:  # runs recorded before it had them
            numbers["latency_p50_s"] = float(np.percentile(latency, 50))
            numbers["latency_p95_s"] = float(np.percentile(latency, 95))
    tags = {TAG + "strategy": str(metrics.get("strategy")), TAG + "variant": variant,
            TAG + "status": str(metrics.get("status")), TAG + "task": str(metrics.get("task")),
            TAG + "model": str(metrics.get("model")), TAG + "run_dir": str(run_dir.resolve()),
            TAG + "primary_metric": str(metrics.get("primary_metric")),
            TAG + "seed": str(metrics.get("seed"))}
    if metrics.get("error"):
        tags[TAG + "error"] = str(metrics["error"]).splitlines()[0][:500]
    return params, numbers, tags


class MlflowLog:
    """One client for one tracking URI and experiment."""

    def __init__(self, settings: TrackingSettings) -> None:
        # a tracker that is down fails a write in seconds, not after mlflow's ~4 minutes of
        # retries; a value the user exported wins
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.timeout_s))
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow import MlflowClient

        self.settings = settings
        self.db_dir: Path | None = None
        if str(settings.uri).startswith("sqlite:///"):  # sqlite:////abs.db or sqlite:///rel.db
            self.db_dir = Path(str(settings.uri).removeprefix("sqlite:///")).resolve().parent
            self.db_dir.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=settings.uri)
        self._experiment: str | None = None

    def experiment_id(self) -> str:
        if self._experiment is None:
            from mlflow.exceptions import MlflowException

            name = self.settings.experiment
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                where = (self.db_dir / "artifacts").as_uri() if self.db_dir else None
                try:
                    self.client.create_experiment(name, artifact_location=where)
                except MlflowException:  # another process created it first
                    pass
                exp = self.client.get_experiment_by_name(name)
            if exp.lifecycle_stage != "active":
                raise RuntimeError(f"MLflow experiment '{name}' is deleted: restore it, or "
                                   "set tracking.experiment to another name")
            self._experiment = exp.experiment_id
        return self._experiment

    def find(self, key: str, value: str):
        runs = self.client.search_runs([self.experiment_id()],
                                       filter_string=f"tags.`{key}` = '{value}'",
                                       max_results=5, order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def sweep_run(self, sweep_dir: Path) -> str:
        """The sweep's MLflow run, created by the first of its runs to be logged (a file
        lock in the sweep folder keeps parallel runs from creating two)."""
        sid = hashlib.sha256(str(sweep_dir.resolve()).encode()).hexdigest()[:20]
        with FileLock(str(sweep_dir / ".tracking.lock")):
            found = self.find(TAG + "sweep_id", sid)
            if found is not None:
                return found.info.run_id
            run = self.client.create_run(
                self.experiment_id(), run_name=sweep_dir.name,
                tags={TAG + "kind": "sweep", TAG + "sweep_id": sid,
                      TAG + "sweep_dir": str(sweep_dir.resolve())})
            self.client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id

    def log_run(self, run_dir: Path, variant: str | None = None) -> dict[str, Any]:
        """Log one finished run folder (`variant`: its label, when the caller knows it)."""
        from mlflow.entities import Metric, Param, RunTag

        metrics = read_json(run_dir / "metrics.json")
        status = metrics.get("status")
        if status not in (STATUS_COMPLETE, STATUS_FAILED):
            return {"logged": False, "skipped": f"status '{status}': not finished"}
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        key = config_hash(config)
        marker = f"{status} {metrics.get('finished_at')}"
        sweep = sweep_dir_of(run_dir)
        parent = self.sweep_run(sweep) if sweep is not None else None
        existing = self.find(TAG + "config_hash", key)
        if existing is not None and existing.data.tags.get(TAG + "logged") == marker:
            return {"logged": True, "run_id": existing.info.run_id, "config_hash": key,
                    "already": True, "parent_run_id": parent}
        params, numbers, tags = run_content(run_dir, metrics, config, variant)
        if existing is None:
            first = {TAG + "config_hash": key, **({"mlflow.parentRunId": parent} if parent else {})}
            run_id = self.client.create_run(self.experiment_id(), run_name=tags[TAG + "variant"],
                                            tags=first).info.run_id
        else:
            run_id = existing.info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in numbers.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        if self.settings.artifacts:
            for name in ARTIFACTS:
                if (run_dir / name).is_file():
                    self.client.log_artifact(run_id, str(run_dir / name))
        self.client.set_tag(run_id, TAG + "logged", marker)  # last: everything above is in
        self.client.set_terminated(run_id, "FINISHED" if status == STATUS_COMPLETE else "FAILED")
        return {"logged": True, "run_id": run_id, "config_hash": key, "parent_run_id": parent,
                "n_params": len(params), "n_metrics": len(numbers)}

    def log_report(self, sweep_dir: Path, files: list[Path], runs: list[Run]) -> str:
        """The report's files on the sweep's MLflow run, and every run's variant tag set to
        the label the report gives it (labels settle only once the sweep is complete)."""
        parent = self.sweep_run(sweep_dir)
        for path in files:
            if path.is_dir():
                self.client.log_artifacts(parent, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(parent, str(path))
        for r in runs:
            try:
                config = yaml.safe_load((r.path / "config.yaml").read_text(encoding="utf-8"))
            except OSError:
                continue
            found = self.find(TAG + "config_hash", config_hash(config or {}))
            if found is not None and found.data.tags.get(TAG + "variant") != r.variant:
                self.client.set_tag(found.info.run_id, TAG + "variant", r.variant)
        return parent
