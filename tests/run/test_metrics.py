"""The run record's metrics (harness.run_record): the one primary-metric rule, and a metric a
user registers in a module of their own, which every run then records and the report
tables, tests and ranks by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.cli import main as report_main
from harness.run_record import METRICS, item_score_of, primary_metric, register_metric

ROOT = Path(__file__).resolve().parents[2]
USER_MODULE = '''
from harness.run_record import register_metric


@register_metric("short_answer", label="answer of at most 2 words", kind="binary")
def short_answer(example, prediction):
    return None if prediction.output is None else float(len(prediction.output.split()) <= 2)
'''


def test_one_primary_metric_rule_for_runs_and_items():
    assert primary_metric({"choice_accuracy": 0.5, "contains": 0.1}, True) == "choice_accuracy"
    assert primary_metric({"choice_accuracy": None, "contains": 0.1}, False) == "contains"
    assert primary_metric({"recall_at_k": 0.9}, False) == "recall_at_k"
    assert primary_metric({}, True) == "choice_accuracy" and primary_metric({}, False) == "contains"
    # freshness scores single items by the same order (it once fell back to hit@k)
    assert item_score_of({"choice_correct": 1.0, "contains": 0.0}) == 1.0
    assert item_score_of({"choice_correct": None, "recall_at_k": 0.5, "hit_at_k": 1.0}) == 0.5
    assert item_score_of({}) is None


def test_registering_checks_the_name_and_kind():
    with pytest.raises(ValueError, match="built in"):
        register_metric("f1", lambda e, p: 1.0)
    with pytest.raises(ValueError, match="kind must be"):
        register_metric("x_metric", lambda e, p: 1.0, kind="ordinal")
    assert "x_metric" not in METRICS


def test_a_users_metric_is_recorded_tabled_tested_and_ranked(tmp_path, capsys):
    (tmp_path / "mymetrics.py").write_text(USER_MODULE)
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "harness.run.runner", "-m", "strategy=prompt,rag",
                          "model=tiny-random", "task.n_entities=15", "answer.max_new_tokens=4",
                          "metrics=[mymetrics]", "progress=false", f"hydra.sweep.dir={sweep}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for run in sweep.glob("*_seed0"):
        m = json.loads((run / "metrics.json").read_text())
        rows = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
        values = [r["scores"]["short_answer"] for r in rows]
        assert set(values) <= {0.0, 1.0} and m["short_answer"] == pytest.approx(sum(values) / len(values))
        assert m["metric_info"]["short_answer"]["kind"] == "binary"
    # the report imports nothing of the user's: it reads what the runs wrote
    assert report_main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    accuracy = md.split("## Accuracy")[1].split("\n## ")[0]
    assert "answer of at most 2 words" in accuracy.splitlines()[4]  # a column of the table
    assert report_main([str(sweep), "--primary-metric", "short_answer"]) == 0
    md = (sweep / "report.md").read_text()
    assert "short_answer [95% CI]" in md.split("## Accuracy")[1].split("\n## ")[0]
    pairs = md.split("## Paired comparisons")[1].split("\n## ")[0]
    assert "| prompt | rag |" in pairs and "McNemar" in pairs
    assert "Accuracy below is **short_answer** (report.primary_metric)" in md
    ranking = md.split("## Ranking by each metric")[1].split("\n## ")[0]
    assert "| answer of at most 2 words (primary) |" in ranking
    assert report_main([str(sweep), "--primary-metric", "no_such_metric"]) == 2
    assert "short_answer" in capsys.readouterr().err  # offered among the known metrics
