"""Sweeps through Hydra's launcher plugins, resume after a kill, and progress counting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.progress import count_runs, describe
from tests.conftest import kill_while_running

SWEEP = ["strategy=prompt,rag", "model=tiny-random", "task.n_entities=30", "limit=20",
         "progress=false"]


def _sweep(sweep: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "harness.run.runner", "-m", *SWEEP, *extra,
            f"hydra.sweep.dir={sweep}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def _results(sweep: Path) -> dict[str, tuple]:
    out = {}
    for m in sorted(sweep.glob("*/metrics.json")):
        metrics = json.loads(m.read_text())
        choices = [json.loads(line)["choice"] for line in
                   (m.parent / "predictions.jsonl").read_text().splitlines()]
        out[m.parent.name] = (metrics["status"], metrics["choice_accuracy"],
                              metrics["recall_at_k"], tuple(choices))
    return out


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launcher_plugins_give_the_sequential_metrics(tmp_path, launcher):
    base = _sweep(tmp_path / "local")
    assert base.returncode == 0, base.stderr[-3000:]
    res = _sweep(tmp_path / launcher, f"launcher={launcher}")
    assert res.returncode == 0, res.stderr[-3000:]
    if launcher == "submitit_local":  # real submitit jobs: their own folders and logs
        assert list((tmp_path / launcher / ".submitit").glob("*/*_log.out"))
    expected = _results(tmp_path / "local")
    assert sorted(expected) == ["0_prompt_seed0", "1_rag_seed0"]
    assert all(status == "complete" for status, *_ in expected.values())
    assert _results(tmp_path / launcher) == expected


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    """SIGKILL the sweep while its second run (a tuning run) is going; re-invoking it
    leaves the finished run alone and completes the rest."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "harness.run.runner", "-m", "strategy=prompt,lora,rag",
            "model=tiny-random", "task.n_entities=30", "limit=10", "progress=false",
            "+per_strategy.lora.train.max_steps=400", "+per_strategy.lora.train.epochs=400",
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    lora = sweep / "1_lora_seed0" / "metrics.json"
    kill_while_running(proc, lora)
    first = json.loads((sweep / "0_prompt_seed0" / "metrics.json").read_text())
    assert first["status"] == "complete"
    assert json.loads(lora.read_text())["status"] == "running"  # never looks complete
    assert not (sweep / "2_rag_seed0").exists()

    # the killed run reads as incomplete in a report, with no numbers from it
    from harness.run_folders import load_runs
    table = load_runs([sweep]).set_index("strategy")
    assert table.loc["lora", "status"] == "incomplete"

    # resume with max_steps cut so the redo is quick: the lora run's config changed, so
    # it is redone; the prompt run's did not, so it is skipped
    args = [a.replace("max_steps=400", "max_steps=3").replace("epochs=400", "epochs=1")
            for a in args]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((sweep / "0_prompt_seed0" / "metrics.json").read_text())
    assert again["finished_at"] == first["finished_at"]
    assert "skipping" in res.stderr + res.stdout
    for name in ("1_lora_seed0", "2_rag_seed0"):
        assert json.loads((sweep / name / "metrics.json").read_text())["status"] == "complete"


def test_count_runs_follows_hydra_sweep_rules():
    assert count_runs({"strategy": "prompt,rag,lora", "seed": "0"}, []) == 3
    assert count_runs({"strategy": "prompt,rag"}, ["seed=0,1,2", "model=tiny-random"]) == 6
    # the command line replaces a preset's sweep of the same key
    assert count_runs({"strategy": "prompt,rag,lora", "seed": "0"}, ["seed=0,1"]) == 6
    assert count_runs({}, ["strategy.k=range(1,4)"]) == 3


def test_progress_line_counts_finished_runs_and_estimates(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"total": 4, "started_at": 1000.0}))
    assert describe(tmp_path, 0, now=1010.0).endswith("ETA after the first run ends")
    for i, status in enumerate(["complete", "failed"]):
        d = tmp_path / f"{i}_x"
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"status": status}))
        os.utime(d / "metrics.json", (1050.0, 1050.0))
    # 2 finished in 100 s -> 2 remaining take ~100 s
    line = describe(tmp_path, 2, "2_x", now=1100.0)
    assert line == "run 3 of 4 (2_x): 2 finished, elapsed 1m40s, ETA 1m40s"
    assert describe(tmp_path / "none", 0) is None


@pytest.mark.parametrize("launcher, target", [
    ("local", "hydra._internal.core_plugins.basic_launcher.BasicLauncher"),
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
    ("slurm", "hydra_plugins.adaptbench_launcher.slurm_launcher.SlurmLauncher"),
])
def test_launcher_configs_select_hydra_plugins(launcher, target):
    from hydra import compose, initialize_config_dir

    from harness.run.runner import CONF_DIR
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"launcher={launcher}",
                                                        "experiment=quick"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.sweeper.params.strategy == "prompt,rag,lora,full,hybrid"
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and "partition" in cfg.hydra.launcher
