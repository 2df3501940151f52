"""Every shipped strategy and experiment config composes and runs on the tiny model, and
what each strategy says about itself (trains, cites) matches what its run shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.run.progress import count_runs
from harness.run.runner import CONF_DIR, run
from tests.conftest import compose_cfg

STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# run in full by tests/models/test_served.py (one run is enough) and tests/search
# study: fair's search at a GPU's size (composed, with its search plan, below)
RUN_ELSEWHERE = {"served_vs_tuned", "fair", "study"}  # fair: tests/search/test_search.py
TINY = ["model=tiny-random", "task.n_entities=20", "answer.generate=false", "seen_eval_limit=4"]
SHORT_TRAINING = ["train.max_steps=2", "train.batch_size=4"]


def test_the_configs_are_found():
    assert {"prompt", "rag", "lora", "full", "hybrid"} <= set(STRATEGIES)
    assert {"quick", "compare_all", "freshness", "tuning_cpu"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_config_runs(tmp_path, name):
    trains_cfg = "train" in compose_cfg([f"strategy={name}"]).strategy
    extra = [f"strategy.{o}" for o in SHORT_TRAINING] if trains_cfg else []
    m = run(compose_cfg([*TINY, f"strategy={name}", "limit=6", *extra], tmp_path), tmp_path / name)
    assert m["status"] == "complete" and m["strategy"] == name and m["n_examples"] == 6
    # what the strategy says about itself is what its run shows
    assert m["trains"] == (m["fit"]["trainable_params"] > 0) == trains_cfg
    assert m["trains"] == (m["seen"] is not None) == (m["fit"]["forgetting"] is not None)
    assert m["can_cite"] == (m["recall_at_k"] is not None) == (m["retrieval_k"] is not None)
    assert m["leakage"]["checked"] and m["leakage"]["test_seen_in_fit"] == 0


def _sweep_values(name: str) -> dict[str, str]:
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    preset = yaml.safe_load(text) or {}
    params = dict(((preset.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    for parent in (preset.get("defaults") or []):  # a preset built on another (freshness)
        if isinstance(parent, str) and parent != "_self_":
            params = {**_sweep_values(parent), **params}
    return params


def preset_applied(name: str, run_dir) -> None:
    """The preset's task values are in the run's config."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    preset = yaml.safe_load((CONF_DIR / "experiment" / f"{name}.yaml").read_text())
    for key, value in (preset.get("task") or {}).items():
        if key != "n_entities" and not isinstance(value, dict):
            assert config["task"][key] == value, key


def test_every_experiment_is_run_by_some_test():
    assert RUN_ELSEWHERE <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e not in RUN_ELSEWHERE])
def test_every_experiment_runs_as_a_multirun(tmp_path, name, request):
    """The preset's own sweep (its strategies; one seed to keep it short) on the tiny model,
    tuning cut to two steps; a preset with a served model (`served`) against llama.cpp's
    server on the bundled GGUF."""
    params = _sweep_values(name)
    served = []
    if "served" in compose_cfg([f"experiment={name}"]):
        served = request.getfixturevalue("llama_server").model_overrides("served")
    strategies = str(params.get("strategy", "prompt")).split(",")
    short = [f"+per_strategy.{s}.{o}" for s in strategies
             if "train" in compose_cfg([f"strategy={s}"]).strategy for o in SHORT_TRAINING]
    sweep = tmp_path / "sweep"
    res = subprocess.run(
        [sys.executable, "-m", "harness.run.runner", "-m", f"experiment={name}", *TINY,
         "seed=0", "progress=false", *short, *served, f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    expected = count_runs({**params, "seed": "0"}, [])
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(metrics) == expected >= len(strategies)  # learn_forget: 3 rates per strategy
    assert {m["strategy"] for m in metrics} == set(strategies)
    assert all(m["status"] == "complete" for m in metrics), [m.get("error") for m in metrics]
    if name == "freshness":
        assert all(m["freshness"]["supported"] for m in metrics)
    preset_applied(name, sweep / f"0_{strategies[0]}_seed0")


def test_the_study_preset_is_the_fair_contest_at_a_gpus_size():
    from harness.report.cli import runs_project_to
    from harness.run_folders import Run
    from tests.test_doc_commands import check_run

    cfg = compose_cfg(["experiment=study"])
    assert (cfg.search.trials, cfg.search.final_seeds, cfg.answer.generate) == (8, 3, "auto")
    assert list(cfg.report.project_to) == ["auto"] and cfg.task.split_ratios[1] > 0
    assert check_run(["-m", "experiment=study", "model=hf", "model.name_or_path=org/model"]) == 4
    # report.project_to=auto: the profile of the GPU the runs were priced on; none on a CPU
    runs = [Run(Path("a"), {"cost": {"hardware": hw}}, {"report.project_to": '["auto"]'})
            for hw in ("A100", "cpu")]
    assert runs_project_to(runs) == ["A100"] and runs_project_to(runs[1:]) == []
    assert runs_project_to([Run(Path("b"), {}, {"report.project_to": '["L4"]'})]) == ["L4"]
