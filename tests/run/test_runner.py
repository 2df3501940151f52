"""End-to-end runs on the tiny model: run directories, failure records, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException

from harness.data import TaskDataError
from harness.report.cli import main as report_main
from harness.run.runner import run
from tests.conftest import compose_cfg

TINY = ["model=tiny-random", "task.n_entities=45"]


@pytest.mark.parametrize("strategy", ["prompt", "rag"])
def test_run_writes_complete_run_directory(tmp_path, strategy):
    cfg = compose_cfg([*TINY, f"strategy={strategy}"], tmp_path)
    metrics = run(cfg, tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "predictions.jsonl", "metrics.json"} <= files
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics, default=str))
    assert on_disk["status"] == "complete" and on_disk["leakage"]["test_seen_in_fit"] == 0
    assert on_disk["strategy"] == strategy and on_disk["model"] == "tiny-random"
    assert on_disk["trains"] is False and on_disk["versions"]["torch"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == on_disk["n_examples"] == on_disk["split_sizes"]["test"] > 0
    # the aggregate metrics are the means of the per-item scores written beside them
    for key, item_key in (("choice_accuracy", "choice_correct"), ("f1", "f1"),
                          ("contains", "contains")):
        assert on_disk[key] == pytest.approx(sum(r["scores"][item_key] for r in rows) / len(rows))
    assert on_disk["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in rows) > 0
    assert on_disk["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in rows) > 0
    assert 0 < on_disk["latency_p50_s"] <= on_disk["latency_p95_s"] <= on_disk["latency_p99_s"]
    assert all(r["output"] is not None and r["choice"] in range(len(r["choices"])) for r in rows)
    if strategy == "rag":
        assert on_disk["can_cite"] and on_disk["recall_at_k"] >= 0.9 and on_disk["retrieval_k"] == 3
        assert rows[0]["citations"] and rows[0]["usage"]["retrieval_s"] > 0
    else:
        assert not on_disk["can_cite"] and on_disk["recall_at_k"] is None
        assert rows[0]["citations"] == []


def test_few_shot_nearest_uses_only_train_examples(tmp_path):
    cfg = compose_cfg([*TINY, "strategy=prompt", "strategy.k_shot=2",
                       "strategy.shot_selection=nearest", "limit=8"], tmp_path)
    metrics = run(cfg, tmp_path / "run")
    assert metrics["leakage"]["examples_seen_in_fit"] == metrics["split_sizes"]["train"]
    assert metrics["n_examples"] == 8


def test_custom_task_runs(tmp_path, small_task_files):
    corpus, examples = small_task_files
    cfg = compose_cfg(["model=tiny-random", "strategy=rag", "task=custom",
                       f"task.corpus_path={corpus}", f"task.examples_path={examples}"], tmp_path)
    metrics = run(cfg, tmp_path / "run")
    assert metrics["status"] == "complete" and metrics["task"] == "custom"
    assert metrics["recall_at_k"] == 1.0


def test_failed_run_is_recorded_with_its_error(tmp_path):
    cfg = compose_cfg(["model=tiny-random", "task=custom",
                       f"task.corpus_path={tmp_path}/missing.jsonl",
                       f"task.examples_path={tmp_path}/missing2.jsonl"], tmp_path)
    with pytest.raises(TaskDataError):
        run(cfg, tmp_path / "run")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "failed" and "missing.jsonl" in m["error"] and "Traceback" in m["traceback"]
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


@pytest.mark.parametrize("override,valid", [
    ("strategy=lroa", ["prompt", "rag", "lora", "full", "hybrid"]),
    ("model=smollm", ["smollm2-135m", "tiny-random", "hf"]),
    ("task=synthetic", ["synthetic_facts", "custom"]),
])
def test_unknown_names_list_valid_names(override, valid):
    with pytest.raises(MissingConfigException) as info:
        compose_cfg([override])
    for name in valid:
        assert name in str(info.value)


@pytest.mark.parametrize("override,message", [
    ("strategy.k=-1", "strategy.k must be >= 1"),
    ("prompt.context_budget_tokens=0", "context_budget_tokens must be >= 1"),
    ("answer.choice_norm=max", "choose one of: sum, mean"),
])
def test_out_of_range_values_fail_clearly(tmp_path, override, message):
    cfg = compose_cfg([*TINY, "strategy=rag", override], tmp_path)
    with pytest.raises(ValueError, match=message):
        run(cfg, tmp_path / "run")


def test_cli_sweep_and_report(tmp_path):
    """The console entry point runs a Hydra multirun; the report reads its directory."""
    res = subprocess.run(
        [sys.executable, "-m", "harness.run.runner", "-m", "strategy=prompt,rag", "model=tiny-random",
         "task.n_entities=30", "limit=10", "progress=false", f"results_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = next((tmp_path / "multirun").iterdir())
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["0_prompt_seed0", "1_rag_seed0"]
    assert report_main([str(sweep)]) == 0
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and "complete" in summary[1] and "complete" in summary[2]


def test_report_lists_failed_runs(tmp_path, capsys):
    ok, bad = tmp_path / "a", tmp_path / "b"
    ok.mkdir(), bad.mkdir()
    (ok / "metrics.json").write_text(json.dumps({"status": "complete", "strategy": "prompt",
                                                 "choice_accuracy": 0.5, "recall_at_k": None}))
    (ok / "predictions.jsonl").write_text(json.dumps(
        {"id": "q1", "scores": {"choice_correct": 1.0}, "usage": {"latency_s": 0.1}}) + "\n")
    (bad / "metrics.json").write_text(json.dumps({"status": "running", "strategy": "prompt"}))
    assert report_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) not complete" in out and "incomplete" in out
    md = (tmp_path / "report.md").read_text()
    assert "cannot cite" in md and "not tuned" in md
    assert report_main([str(tmp_path / "nothing")]) == 2


def test_results_folder_is_kept_but_ignored():
    root = Path(__file__).resolve().parents[2]
    assert (root / "results" / ".gitkeep").exists()
    assert "results/*" in (root / ".gitignore").read_text()


def test_sweep_survives_a_failing_run_and_skips_complete_runs_on_rerun(tmp_path):
    """k=-1 fails the second run; re-invoking the same sweep dir redoes nothing that
    is complete."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "harness.run.runner", "-m", "strategy=rag", "strategy.k=3,-1",
            "model=tiny-random", "task.n_entities=30", "limit=5", "progress=false",
            f"results_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ok_dir, bad_dir = sweep / "0_rag_seed0", sweep / "1_rag_seed0"
    assert json.loads((bad_dir / "metrics.json").read_text())["status"] == "failed"
    first = json.loads((ok_dir / "metrics.json").read_text())
    assert first["status"] == "complete"
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "skipping" in res.stderr + res.stdout
    again = json.loads((ok_dir / "metrics.json").read_text())
    assert again["finished_at"] == first["finished_at"]  # not redone
    assert json.loads((bad_dir / "metrics.json").read_text())["status"] == "failed"  # redone


def test_rerun_into_a_new_directory_reads_predictions_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cfg = compose_cfg([*TINY, "strategy=rag", f"cache_dir={cache}", "limit=24"], tmp_path)
    first = run(cfg, tmp_path / "a")
    second = run(cfg, tmp_path / "b")
    assert first["prediction_cache_hits"] == 0 and second["prediction_cache_hits"] >= 1
    rows = [[json.loads(x) for x in (tmp_path / d / "predictions.jsonl").open()] for d in "ab"]
    for a, b in zip(*rows):  # the same predictions; retrieval is searched (and timed) again
        assert {k: v for k, v in a.items() if k != "usage"} == {
            k: v for k, v in b.items() if k != "usage"}
        for key in ("scoring_s", "generation_s", "prompt_tokens", "completion_tokens"):
            assert a["usage"][key] == b["usage"][key]  # model seconds as first measured
    for key in ("choice_accuracy", "recall_at_k", "prompt_tokens", "scoring_s"):
        assert first[key] == second[key]
    # charged what the model calls took when computed, not the seconds of reading them back
    computed_s = sum(json.loads((e / "results.json").read_text())["seconds"]
                     for e in (cache / "predictions").iterdir() if e.is_dir())
    assert second["predict_s"] >= computed_s > 0
    assert second["predict_wall_s"] < second["predict_s"]
    off = run(compose_cfg([*TINY, "strategy=rag", f"cache_dir={cache}", "limit=24",
                           "prediction_cache=false"], tmp_path), tmp_path / "c")
    assert off["prediction_cache_hits"] == 0 and off["choice_accuracy"] == first["choice_accuracy"]


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **env}
    root = Path(__file__).resolve().parents[2]
    full_env["PYTHONPATH"] = str(root)
    return subprocess.run([sys.executable, "-m", "harness.run.runner", "model=tiny-random",
                           "progress=false", f"results_dir={cwd}/results", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=300)


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, small_task_files):
    corpus, examples = small_task_files
    examples.write_text(examples.read_text() + '{"id": "q9", "question": "?"}\n')
    bad_data = ["strategy=prompt", "task=custom", f"task.corpus_path={corpus}",
                f"task.examples_path={examples}"]
    res = _cli(bad_data, tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert lines[-1].startswith(f"harness-run: error: {examples}:13: field 'answer'")
    full = _cli(bad_data, tmp_path, HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr and "TaskDataError" in full.stderr

    res = _cli(["strategy=rag", "strategy.k=0"], tmp_path)  # a config value
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == "harness-run: error: strategy.k must be >= 1, got 0"

    # a strategy in a module of the directory harness-run starts in: found; its bug keeps
    # the traceback; one that lacks a contract member is a one-line error
    (tmp_path / "mystrat.py").write_text(
        "class Buggy:\n    trains = cites = False\n    retrieval_k = None\n"
        "    def __init__(self, ctx, name='buggy'):\n        self.name = name\n"
        "    def fit(self, task):\n        return 1 / 0\n"
        "    def predict(self, examples):\n        return []\n"
        "class Incomplete:\n    def __init__(self, ctx, name='incomplete'):\n"
        "        self.name = name\n")
    res = _cli(["strategy=prompt", "strategy._target_=mystrat.Buggy", "~strategy.k_shot",
                "~strategy.shot_selection"], tmp_path)
    assert res.returncode == 1 and "ZeroDivisionError" in res.stderr and "mystrat.py" in res.stderr
    res = _cli(["strategy=prompt", "strategy._target_=mystrat.Incomplete", "~strategy.k_shot",
                "~strategy.shot_selection"], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "has no trains, cites, retrieval_k, fit, predict" in res.stderr
