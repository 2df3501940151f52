"""tracking=mlflow against a real MLflow tracking server that the test starts (and stops
mid-sweep), and against the default local store; harness-track afterwards, without
duplicates; the report on the sweep's MLflow run; summary.parquet."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.errors import ConfigError
from harness.export.llamacpp import free_port
from harness.processes import launch, stop, wait_ready
from harness.run.compose import config_text, same_config
from harness.tracking import TrackingSettings, config_hash, redact
from harness.tracking.cli import main as track_main
from tests.conftest import compose_cfg

mlflow = pytest.importorskip("mlflow")

TINY = ["model=tiny-random", "task.n_entities=20", "answer.generate=false", "limit=6",
        "progress=false", "seen_eval_limit=2"]


class MlflowServer:
    """`mlflow server` on a free loopback port over a sqlite store; stop() and start()
    again keep the store (a tracker that goes down and comes back)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{self.root / 'store.db'}",
               "--artifacts-destination", str(self.root / "artifacts")]
        self.proc = launch(cmd, self.root / "server.log")
        wait_ready(self.proc, f"{self.uri}/health", self.root / "server.log", "mlflow server", 120)
        return self

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path).start()
    yield server
    server.stop()


def _children(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("adaptbench")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if r.data.tags.get("adaptbench.kind") != "sweep"], \
        [r for r in runs if r.data.tags.get("adaptbench.kind") == "sweep"], client


def _sweep(sweep: Path, *extra: str, seeds: str = "0,1") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.run.runner", "-m", *TINY, "strategy=prompt,rag",
         f"seed={seeds}", "tracking=mlflow", *extra, f"hydra.sweep.dir={sweep}",
         f"results_dir={sweep.parent / 'results'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_sweep_logs_to_a_server_that_stops_midway_and_harness_track_fills_the_gap(
        tmp_path, mlflow_server):
    sweep = tmp_path / "sweep"
    proc = _sweep(sweep, f"tracking.uri={mlflow_server.uri}", "tracking.retries=0")
    deadline = time.monotonic() + 600
    while not list(sweep.glob("*/tracking.json")):  # the first run is logged: stop the server
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    mlflow_server.stop()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]

    runs = sorted(sweep.glob("*/metrics.json"))
    assert len(runs) == 4
    assert all(json.loads(p.read_text())["status"] == "complete" for p in runs)  # none lost
    records = [json.loads((p.parent / "tracking.json").read_text()) for p in runs]
    logged = [r for r in records if r["logged"]]
    missed = [r for r in records if not r["logged"]]
    assert len(logged) >= 1 and len(missed) >= 1, records
    assert all("Connection" in r["error"] or "connect" in r["error"] for r in missed)
    # said once per run that was not logged, one line each, with what to do
    assert out.count("was not logged to MLflow") == len(missed)
    assert out.count(f"harness-track {sweep}") == len(missed)
    assert "Traceback" not in out

    mlflow_server.start()  # the tracker is back: log what it missed
    assert track_main([str(sweep)]) == 0
    children, sweeps, client = _children(mlflow_server.uri)
    assert len(children) == 4 and len(sweeps) == 1
    assert len({r.data.tags["adaptbench.config_hash"] for r in children}) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {sweeps[0].info.run_id}
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["adaptbench.strategy"] in ("prompt", "rag")
        assert r.data.tags["adaptbench.status"] == "complete"
        assert r.data.params["strategy.name"] == r.data.tags["adaptbench.strategy"]
        assert r.data.params["model.name_or_path"] and "tracking.uri" not in r.data.params
        m = r.data.metrics
        assert 0 <= m["choice_accuracy.ci_low"] <= m["choice_accuracy"] <= m["choice_accuracy.ci_high"]
        assert m["latency_p95_s"] > 0 and m["modelled_seconds_per_query"] > 0
        assert m["usd.per_1k_queries.modelled"] > 0 and m["usd.build.measured"] >= 0
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"predictions.jsonl", "metrics.json", "config.yaml"} <= arts
        seeds = {c.data.tags["adaptbench.seed"] for c in children}
    assert seeds == {"0", "1"}

    # again: nothing new (the key is the config hash)
    assert track_main([str(sweep)]) == 0
    assert len(_children(mlflow_server.uri)[0]) == 4

    # the report goes on the sweep's run
    res = subprocess.run([sys.executable, "-m", "harness.report.cli", str(sweep)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "logged to MLflow" in res.stdout
    arts = {a.path for a in client.list_artifacts(sweeps[0].info.run_id)}
    assert {"report.md", "report.html", "summary.csv", "plots"} <= arts
    summary = pd.read_parquet(sweep / "summary.parquet")
    assert len(summary) == 4 and str(summary.choice_accuracy.dtype) == "Float64"
    assert str(summary.seed.dtype) == "Int64" and str(summary.trains.dtype) == "boolean"


def test_the_default_local_store_and_a_rerun_add_no_duplicate(tmp_path):
    sweep = tmp_path / "sweep"
    out, _ = _sweep(sweep, seeds="0").communicate(timeout=600)
    db = tmp_path / "results" / "mlflow" / "mlflow.db"
    assert db.is_file(), out[-3000:]
    uri = f"sqlite:///{db}"
    children, sweeps, _ = _children(uri)
    assert len(children) == 2 and len(sweeps) == 1
    # the same sweep again: every run is complete, skipped, and found in the store
    out, _ = _sweep(sweep, seeds="0").communicate(timeout=600)
    assert out.count("skipping") == 2, out[-3000:]
    assert len(_children(uri)[0]) == 2
    record = json.loads(next(sweep.glob("*/tracking.json")).read_text())
    assert record["logged"] and record.get("already") and record["uri"] == uri


def test_the_config_hash_is_what_the_run_is(tmp_path):
    cfg = yaml.safe_load(yaml.safe_dump({"seed": 0, "strategy": {"name": "rag", "k": 3},
                                         "results_dir": "a", "progress": True,
                                         "tracking": {"backend": "none"}}))
    moved = {**cfg, "results_dir": "b", "progress": False, "tracking": {"backend": "mlflow"}}
    assert config_hash(cfg) == config_hash(moved)
    assert config_hash(cfg) != config_hash({**cfg, "seed": 1})
    assert config_hash(cfg) != config_hash({**cfg, "strategy": {"name": "rag", "k": 5}})
    # turning tracking on does not make a complete run run again
    (tmp_path / "config.yaml").write_text(config_text(compose_cfg(["model=tiny-random"])))
    assert same_config(tmp_path, compose_cfg(["model=tiny-random", "tracking=mlflow"]))
    assert not same_config(tmp_path, compose_cfg(["model=tiny-random", "seed=3"]))


def test_settings_are_checked_and_secrets_stay_out():
    with pytest.raises(ConfigError, match="no credentials in the URI"):
        TrackingSettings(backend="mlflow", uri="http://bob:s3cret@mlflow.internal:5000")
    with pytest.raises(ConfigError, match="unknown key"):
        TrackingSettings.from_config({"backend": "mlflow", "url": "x"})
    with pytest.raises(ConfigError, match="choose one of: none, mlflow"):
        TrackingSettings(backend="wandb")
    s = TrackingSettings.from_config({"backend": "mlflow"}, "/data/results")
    assert s.uri == "sqlite:////data/results/mlflow/mlflow.db"
    assert redact("failed at https://bob:s3cret@host:5000/api") == "failed at https://***@host:5000/api"


def test_a_relative_sqlite_uri_is_relative_to_where_it_runs(tmp_path, monkeypatch):
    from harness.tracking.mlflow_log import MlflowLog

    monkeypatch.chdir(tmp_path)
    log = MlflowLog(TrackingSettings(backend="mlflow", uri="sqlite:///store/mlflow.db"))
    assert log.db_dir == tmp_path / "store" and log.db_dir.is_dir()
    assert log.experiment_id()  # the store and the experiment are created there
    assert (tmp_path / "store" / "mlflow.db").is_file()
