"""The report of a (tiny-model) freshness sweep: table, plot and decision line, with the
numbers taken from the runs' files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.build import build_report
from harness.report.cli import main as report_main
from harness.run_folders import read_runs


@pytest.fixture(scope="module")
def fresh_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("fresh") / "sweep"
    args = [sys.executable, "-m", "harness.run.runner", "-m", "experiment=freshness",
            "model=tiny-random", "progress=false", "strategy=prompt,rag,lora",
            "task.n_entities=30", "+per_strategy.lora.train.max_steps=3",
            f"hydra.sweep.dir={sweep}"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert report_main([str(sweep)]) == 0
    return sweep


def test_freshness_table_plot_and_decision(fresh_sweep):
    md = (fresh_sweep / "report.md").read_text()
    html = (fresh_sweep / "report.html").read_text()
    assert 'data-table="freshness"' in html and 'data-plot="freshness"' in html
    assert (fresh_sweep / "plots" / "freshness.png").stat().st_size > 5000
    table = md.split("## Knowledge freshness")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    modes = [tuple(c.strip() for c in line.split("|")[1:3]) for line in rows[1:]]
    assert modes == [("prompt", "none"), ("rag", "reindex"), ("lora", "continue"),
                     ("lora", "retrain")]
    assert "6 of 30 documents changed and 24 of 120 questions" in table
    assert "**When the facts change often**" in md and "Staleness of lora" in md


def test_freshness_numbers_come_from_the_runs(fresh_sweep):
    report = build_report(read_runs([fresh_sweep]))
    frame = report.freshness.frame.set_index(["variant", "mode"])
    for run_dir in sorted(fresh_sweep.glob("*_seed0")):
        m = json.loads((run_dir / "metrics.json").read_text())
        for mode, block in m["freshness"]["modes"].items():
            row = frame.loc[(m["strategy"], mode)]
            assert row.changed_after == pytest.approx(block["accuracy_changed"])
            assert row.stale_before == pytest.approx(m["freshness"]["before"]["stale_rate"])
            assert row.update_charged_s == pytest.approx(block["update_build_s"])
            assert row.update_usd == pytest.approx(block["update_build_s"] / 3600 * 0.10)
            assert row.changed_after_low <= row.changed_after <= row.changed_after_high
            fresh = [json.loads(x) for x in (run_dir / "predictions_fresh.jsonl").open()]
            same = {r["id"] for r in fresh if r["phase"] == mode and not r["changed"]}
            first = [json.loads(x) for x in (run_dir / "predictions.jsonl").open()]
            scores = [r["scores"]["choice_correct"] for r in first if r["id"] in same]
            assert row.unchanged_before == pytest.approx(sum(scores) / len(scores))
    rag = frame.loc[("rag", "reindex")]
    assert rag.update_vs_build > 0  # seconds, which a busy machine moves either way
    # only the changed documents were embedded (counted work, not seconds)
    m = json.loads(next(fresh_sweep.glob("*_rag_seed0/metrics.json")).read_text())
    notes = m["freshness"]["modes"]["reindex"]["notes"]
    assert 0 < notes["embedded_chunks"] < notes["n_chunks"] and notes["reused_chunks"] > 0
