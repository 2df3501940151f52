"""A sweep with several variants of one strategy: the decision summary ranks one per
strategy, picked on validation runs where they exist (report.select_on=val) and otherwise on
the test split with a warning of how optimistic that can be."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.report.build import build_report
from harness.report.cli import main as report_main
from harness.run_folders import read_runs

N = 60


def _run(root: Path, strategy: str, k: int, split: str, accuracy: float) -> None:
    d = root / f"{strategy}-{k}-{split}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "eval_split": split, "strategy": {"name": strategy, "k": k},
         "model": {"name_or_path": "m"}, "results_dir": str(root)}))
    right = round(accuracy * N)
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": 0, "n_examples": N, "split": split,
        "trains": False, "retrieval_k": k, "primary_metric": "choice_accuracy",
        "choice_accuracy": right / N, "seconds_per_query": 0.1, "build_s": 1.0,
        "fit": {"trainable_params": 0}, "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}))
    with (d / "predictions.jsonl").open("w") as f:
        for i in range(N):
            f.write(json.dumps({"id": f"{split}{i}", "scores": {"choice_correct": float(i < right)},
                                "usage": {"latency_s": 0.2}}) + "\n")


def _sweep(root: Path, with_val: bool) -> None:
    _run(root, "prompt", 0, "test", 0.3)
    for k, test, val in ((1, 0.6, 0.55), (3, 0.7, 0.8), (5, 0.75, 0.7)):
        _run(root, "rag", k, "test", test)
        if with_val:
            _run(root, "rag", k, "val", val)


def test_validation_runs_pick_the_representative(tmp_path):
    _sweep(tmp_path, with_val=True)
    report = build_report(read_runs([tmp_path]))
    pick = next(p for p in report.picks if p.strategy == "rag")
    assert pick.on == "val" and pick.chosen == "rag (k=3)"  # best on val, not on test (k=5)
    assert len(report.variants) == 4  # the tables keep every test variant ...
    text = "\n".join(report.decision)
    assert "rag (k=3) stands for it, picked among 3 variants on their validation runs" in text
    rest = [line for line in report.decision if "stands for it" not in line]
    assert not any("rag (k=5)" in line or "rag (k=1)" in line for line in rest)  # ranks one
    assert "Most accurate: rag (k=3)" in text


def test_without_validation_runs_the_pick_on_test_says_how_optimistic_it_is(tmp_path):
    _sweep(tmp_path, with_val=False)
    assert report_main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "rag: rag (k=5) was picked among 3 variants on the test split itself" in md
    assert "can overstate what the pick delivers by up to about" in md
    report = build_report(read_runs([tmp_path]), select_on="none")
    assert all(p.on == "only" for p in report.picks)  # every variant ranked, as before
    assert not any("picked among" in line for line in report.decision)
