"""harness-report on a real (tiny-model) run of the quick preset, plus labelling and cost
units on hand-made run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cost.prices import hardware_name, run_prices
from harness.report.cli import main as report_main
from harness.run_folders import read_runs

TABLES = ["accuracy", "pairs", "cost", "cost_model", "latency", "retrieval", "attribution",
          "forgetting", "seen", "build", "failures"]
PLOTS = ["accuracy_vs_cost", "accuracy_vs_latency", "seed_spread", "latency_distribution",
         "recall_vs_latency"]


def test_quick_sweep_report_has_every_part(quick_sweep):
    html = (quick_sweep / "report.html").read_text()
    md = (quick_sweep / "report.md").read_text()
    for key in TABLES:
        assert f'data-table="{key}"' in html
    for name in PLOTS:
        assert f'data-plot="{name}"' in html
        assert (quick_sweep / "plots" / f"{name}.png").stat().st_size > 5000
        assert f"plots/{name}.png" in md
    assert html.count("data:image/png;base64,") == len(PLOTS)  # self-contained
    assert "Decision summary" in md and "Pareto-optimal" in md
    retrieval = md.split("## Retrieval\n")[1].split("\n## ")[0]  # nothing the embedder cut
    assert "| chunks cut by the embedder |" in retrieval and "0 question(s) cut" in retrieval
    assert "(window 256; 0 split to fit)" in retrieval
    assert "detectable (80% power)" in md and "Power: each pair's" in md
    summary = pd.read_csv(quick_sweep / "summary.csv")
    assert sorted(summary.strategy) == ["full", "hybrid", "lora", "prompt", "rag", "rag"]
    assert (summary.status == "complete").sum() == 5
    assert summary.loc[summary.status == "failed", "error"].str.contains("k must be >= 1").all()


def test_report_says_what_a_strategy_cannot_do(quick_sweep):
    md = (quick_sweep / "report.md").read_text()
    attribution = md.split("## Source attribution")[1].split("## ")[0]
    for name in ("prompt", "lora", "full"):
        row = next(line for line in attribution.splitlines() if line.startswith(f"| {name} |"))
        assert "cannot cite" in row
    for name in ("rag", "hybrid"):
        row = next(line for line in attribution.splitlines() if line.startswith(f"| {name} |"))
        assert "cannot cite" not in row
    forgetting = md.split("## Forgetting")[1].split("## ")[0]
    assert "| prompt | not tuned" in forgetting and "| lora | not tuned" not in forgetting
    assert "5_rag_seed0_bad" in md.split("## Failed runs")[1]


def test_cost_table_uses_recorded_prices(quick_sweep):
    metrics = json.loads((quick_sweep / "2_lora_seed0" / "metrics.json").read_text())
    assert metrics["cost"]["hardware"] == "cpu" and metrics["cost"]["usd_per_hour"] == 0.10
    assert metrics["build_s"] > 0
    md = (quick_sweep / "report.md").read_text()
    cost = md.split("## Cost")[1].split("## ")[0]
    assert "cpu @ $0.10/h" in cost and "break-even vs prompt" in cost


def _fake_run(root: Path, name: str, strategy: str, seed: int, k: int, correct: list[int]):
    d = root / name
    d.mkdir(parents=True)
    cfg = {"seed": seed, "strategy": {"name": strategy, "k": k}, "model": {"name_or_path": "m"},
           "results_dir": str(root)}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": seed, "n_examples": len(correct),
        "primary_metric": "choice_accuracy", "choice_accuracy": sum(correct) / len(correct),
        "seconds_per_query": 0.1, "build_s": 1.0,
        "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}))
    with (d / "predictions.jsonl").open("w") as f:
        for i, c in enumerate(correct):
            f.write(json.dumps({"id": f"q{i}", "scores": {"choice_correct": float(c)},
                                "usage": {"latency_s": 0.2}}) + "\n")


def test_variants_are_labelled_by_the_values_that_differ_and_seeds_pool(tmp_path):
    _fake_run(tmp_path, "a", "rag", 0, 3, [1, 1, 0, 0])
    _fake_run(tmp_path, "b", "rag", 1, 3, [1, 0, 0, 0])
    _fake_run(tmp_path, "c", "rag", 0, 5, [1, 1, 1, 0])
    runs = read_runs([tmp_path])
    assert sorted(r.variant for r in runs) == ["rag (k=3)", "rag (k=3)", "rag (k=5)"]
    assert report_main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "| rag (k=3) | 2 | 4 | 0.375" in md  # two seeds pooled: (2 + 1) / 8
    assert "| rag (k=5) | 1 | 4 | 0.750" in md  # the seed count, not the seed's value
    assert "how many seeds each variant ran (values: 0, 1)" in md
    assert "paired bootstrap" in md  # several seeds on one side


def test_hardware_and_price_validation():
    prices = {"cpu": 0.1, "A100": 3.0, "A10G": 1.0}
    assert hardware_name({"hardware": "A100", "usd_per_hour": prices}) == "A100"
    with pytest.raises(ValueError, match="no price"):
        hardware_name({"hardware": "TPU", "usd_per_hour": prices})
    with pytest.raises(ValueError, match="cost.api.x.input_per_mtok"):
        run_prices({"hardware": "cpu", "usd_per_hour": prices,
                    "api": {"x": {"input_per_mtok": -1, "output_per_mtok": 1}}})
    with pytest.raises(ValueError, match="cost.api.x: unknown key.*input_usd_per_1m"):  # the old schema
        run_prices({"hardware": "cpu", "usd_per_hour": prices,
                    "api": {"x": {"input_usd_per_1m": 1, "output_usd_per_1m": 1}}})
    # one schema: a served model's price file prices the hosted-API table too
    from omegaconf import OmegaConf

    from tests.conftest import compose_cfg
    cost = OmegaConf.to_container(compose_cfg(["+cost/api@cost.api.gpt-4o-mini=gpt-4o-mini"]).cost,
                                  resolve=True)
    assert run_prices(cost)["api"]["gpt-4o-mini"]["input_per_mtok"] == 0.15
    with pytest.raises(ValueError, match="cost.api.x: give input_per_mtok and output_per_mtok"):
        run_prices({"hardware": "cpu", "usd_per_hour": prices, "api": {"x": {"price_per_hour": 1}}})
