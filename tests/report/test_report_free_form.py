"""The report's free-form parts on hand-made run directories: the free-form and trust
tables, report.primary_metric (with the paired bootstrap for a continuous metric), and
the human labels file with its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.report.cli import main as report_main

N = 40


def _run(root: Path, strategy: str, choice: list[int], semantic: list[int],
         similarity: list[float], cites: bool) -> Path:
    d = root / strategy
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "strategy": {"name": strategy}}))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": 0, "n_examples": N,
        "can_cite": cites, "retrieval_k": 3 if cites else None,
        "primary_metric": "choice_accuracy", "choice_accuracy": mean(choice),
        "contains": mean(semantic), "semantic_correct": mean(semantic),
        "semantic_similarity": mean(similarity), "semantic_threshold": 0.6,
        "semantic_calibration": {"value": 0.6, "source": "calibrated on this run"},
        "groundedness": 0.8 if cites else None, "unsupported_rate": 0.1 if cites else None,
        "seconds_per_query": 0.1, "build_s": 1.0,
        "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}))
    with (d / "predictions.jsonl").open("w") as f:
        for i in range(N):
            f.write(json.dumps({"id": f"q{i}", "output": "x", "scores": {
                "choice_correct": float(choice[i]), "contains": float(semantic[i]),
                "semantic_correct": float(semantic[i]), "semantic_similarity": similarity[i],
                "groundedness": 0.8 if cites else None},
                "usage": {"latency_s": 0.2}}) + "\n")
    return d


@pytest.fixture
def sweep(tmp_path):
    # rag: the semantic call agrees with choice correctness on 36 of 40 items;
    # prompt: it is right on 10, and the semantic call says 'correct' on the first 10 only
    choice_r = [1] * 30 + [0] * 10
    sem_r = [1] * 28 + [0] * 2 + [1] * 2 + [0] * 8
    choice_p = [1, 0] * 5 + [0] * 30
    sem_p = [1] * 10 + [0] * 30
    _run(tmp_path, "rag", choice_r, sem_r, [0.9 if s else 0.3 for s in sem_r], True)
    _run(tmp_path, "prompt", choice_p, sem_p, [0.7 if s else 0.2 for s in sem_p], False)
    return tmp_path


def _md(d: Path) -> str:
    return (d / "report.md").read_text()


def test_free_form_and_trust_tables(sweep):
    assert report_main([str(sweep)]) == 0
    md = _md(sweep)
    assert "## Free-form answers" in md and "## How far the free-form metrics can be trusted" in md
    assert "| prompt |" in md and "cannot cite" in md  # prompt: no groundedness
    assert "0.600 (calibrated on this run)" in md
    # pooled over both variants: rag agrees on 28 + 8 items, prompt on 5 + 30 -> 71 / 80
    row = next(x for x in md.splitlines() if x.startswith("| semantic call |"))
    assert row.startswith("| semantic call | 0.89 |")
    assert "| semantic similarity | rag > prompt | yes |" in md  # the ranking table


def test_primary_metric_ranks_by_it_and_uses_the_paired_bootstrap(sweep):
    assert report_main([str(sweep), "report.primary_metric=semantic_similarity"]) == 0
    md = _md(sweep)
    assert "semantic_similarity [95% CI]" in md
    assert "Accuracy below is **semantic_similarity**" in md
    pairs = md.split("## Paired comparisons")[1].split("\n## ")[0]
    assert "| paired bootstrap |" in pairs and "| McNemar (exact) |" not in pairs
    assert report_main([str(sweep), "--primary-metric", "semantic_correct"]) == 0
    assert "semantic_correct [95% CI]" in _md(sweep) and "| McNemar (exact) |" in _md(sweep)


def test_primary_metric_errors(sweep, capsys):
    assert report_main([str(sweep), "--primary-metric", "vibes"]) == 2
    assert "unknown metric 'vibes'" in capsys.readouterr().err
    assert report_main([str(sweep), "--primary-metric", "judge_correct"]) == 2
    assert "no complete run has 'judge_correct'" in capsys.readouterr().err


def test_human_labels_agreement(sweep):
    labels = sweep / "labels.jsonl"
    # humans agree with the choice score on rag's first 20 items
    rows = [{"id": f"q{i}", "strategy": "rag", "correct": True} for i in range(20)]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report_main([str(sweep), "--labels", str(labels)]) == 0
    md = _md(sweep)
    assert "human labels: n" in md and "agrees with humans" in md
    row = next(x for x in md.splitlines() if x.startswith("| semantic call |"))
    assert "| 20 | 1.00 |" in row  # semantic call on rag's first 20: all correct


@pytest.mark.parametrize("line, message", [
    ('{"id": "nope", "strategy": "rag", "correct": true}', "labels.jsonl:2: field 'id': no item 'nope'"),
    ('{"id": "q1", "strategy": "lora", "correct": true}', "labels.jsonl:2: field 'strategy': unknown"),
    ('{"id": "q1", "strategy": "rag", "correct": "yes"}',
     "labels.jsonl:2: field 'correct' must be true or false"),
    ('{"id": "q1", "strategy": "rag"}', "labels.jsonl:2: field 'correct' is missing"),
    ('{"id": "q1", ', "labels.jsonl:2: not JSON"),
])
def test_bad_labels_name_the_line_and_field(sweep, capsys, line, message):
    labels = sweep / "labels.jsonl"
    labels.write_text('{"id": "q0", "strategy": "rag", "correct": true}\n' + line + "\n")
    assert report_main([str(sweep), "report.labels=" + str(labels)]) == 2
    assert message in capsys.readouterr().err


def test_a_task_without_choices_runs_all_the_way(tmp_path):
    """task.n_choices=0: the five strategies, the freshness scenario and the report."""
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    res = subprocess.run(
        [sys.executable, "-m", "harness.run.runner", "-m", "experiment=quick", "model=tiny-random",
         "progress=false", "task.n_choices=0", "answer.generate=true", "freshness.enabled=true",
         "task.n_entities=24", "seen_eval_limit=10", "embedder.semantic_threshold=0.7",
         *[f"+per_strategy.{s}.train.max_steps=2" for s in ("lora", "full", "hybrid")],
         f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [m["strategy"] for m in metrics] == ["prompt", "rag", "lora", "full", "hybrid"]
    for m in metrics:
        assert m["status"] == "complete" and m["choice_accuracy"] is None
        assert m["primary_metric"] == "contains" and m["semantic_similarity"] is not None
        assert m["semantic_calibration"]["source"] == "embedder.semantic_threshold"
        fr = m["freshness"]
        assert fr["supported"] and fr["modes"]
        for mode in fr["modes"].values():
            assert mode["accuracy_changed"] is not None  # scored by contains
    assert report_main([str(sweep), "--primary-metric", "semantic_correct"]) == 0
    md = _md(sweep)
    assert "## Free-form answers" in md and "## Knowledge freshness" in md
    assert "**Nothing here can be checked**" in md
