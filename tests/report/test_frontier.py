"""The learn-vs-forget frontier on hand-made run folders with known accuracies and
forgetting: points, Pareto marks, the matched-accuracy sentence, the plot, and when the
section is left out."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.report.build import build_report
from harness.report.cli import main as report_main
from harness.report.frontier import compare, frontier_data
from harness.report.variants import make_variants
from harness.run_folders import read_runs
from harness.stats import Estimate

N = 40


def _run(root: Path, strategy: str, scale: float, accuracy: float, delta: float,
         half_width: float = 1.0, top: dict | None = None, **extra) -> None:
    d = root / f"{strategy}-{scale}-{extra.get('r', '')}"
    d.mkdir(parents=True)
    strat = {"name": strategy, "train": {"lr": 1e-3, "lr_scale": scale}, **extra}
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "strategy": strat, "model": {"name_or_path": "m"}, "results_dir": str(root),
         **(top or {})}))
    right = round(accuracy * N)
    forgetting = {"control_perplexity_before": 10.0, "control_perplexity_after": 10.0 + delta,
                  "control_perplexity_delta": delta,
                  "control_perplexity_delta_low": delta - half_width,
                  "control_perplexity_delta_high": delta + half_width}
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": 0, "n_examples": N, "trains": True,
        "primary_metric": "choice_accuracy", "choice_accuracy": right / N,
        "seconds_per_query": 0.1, "build_s": 1.0, "fit": {"trainable_params": 10,
                                                           "forgetting": forgetting},
        "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}))
    with (d / "predictions.jsonl").open("w") as f:
        for i in range(N):
            f.write(json.dumps({"id": f"q{i}", "scores": {"choice_correct": float(i < right)},
                                "usage": {"latency_s": 0.2}}) + "\n")


def _sweep(root: Path, lora, full) -> None:
    for strategy, points in (("lora", lora), ("full", full)):
        for scale, (acc, delta) in zip((0.3, 1.0, 3.0), points):
            _run(root, strategy, scale, acc, delta)


def test_a_learning_rate_sweep_gets_a_frontier_section(tmp_path):
    # lora reaches 0.2/0.4/0.6 at +2/+10/+20; full 0.3/0.5/0.7 at +1/+3/+25. At 0.45 (the
    # middle of 0.3-0.6) lora forgets +12.5 and full +2.5, both +-1: apart.
    _sweep(tmp_path, [(0.2, 2.0), (0.4, 10.0), (0.6, 20.0)], [(0.3, 1.0), (0.5, 3.0), (0.7, 25.0)])
    assert report_main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Learning against forgetting")[1].split("\n## ")[0]
    assert "| lora | train.lr_scale=0.3 | 0.200" in section
    assert "| +25.00 [+24.00, +26.00] | yes |" in section
    assert (tmp_path / "plots" / "learn_forget.png").stat().st_size > 10_000
    decision = md.split("## Decision summary")[1].split("\n## ")[0]
    line = next(x for x in decision.splitlines() if "Learning vs forgetting" in x)
    assert "at choice_accuracy 0.450" in line and "(0.300–0.600)" in line
    assert "full forgets less: control perplexity change +2.50 [+1.50, +3.50]" in line
    assert "against lora's +12.50 [+11.50, +13.50]; the intervals do not overlap" in line
    assert "full forgets less across that whole range" in line


def test_pareto_marks_and_overlapping_intervals(tmp_path):
    # full's middle point is dominated (less accurate and forgets more than its first)
    _sweep(tmp_path, [(0.2, 2.0), (0.4, 4.0), (0.6, 6.0)], [(0.3, 2.5), (0.25, 5.0), (0.7, 7.0)])
    fr = frontier_data(make_variants(read_runs([tmp_path])), "choice_accuracy")
    marks = {(p.method, p.setting): p.pareto for pts in fr.methods.values() for p in pts}
    assert marks[("full", "train.lr_scale=1.0")] is False
    assert sum(marks.values()) == 5
    # at 0.45: lora +4.5, full +2.5 + 0.15/0.4 * 4.5 = +4.19, both +-1: not apart
    assert "the intervals overlap, so this sweep does not tell them apart" in fr.lines[0]


def _point(method: str, acc: float, delta: float):
    from harness.report.frontier import Point
    return Point(f"{method}-{acc}", method, "", Estimate(acc, acc - 0.1, acc + 0.1, N, 1),
                 delta, delta - 0.5, delta + 0.5, pareto=True)


def test_the_sentence_says_when_the_order_flips_or_the_ranges_do_not_meet():
    a = [_point("a", 0.2, 1.0), _point("a", 0.8, 9.0)]
    b = [_point("b", 0.2, 3.0), _point("b", 0.8, 5.0)]  # b forgets more below 0.4, less above
    line = compare("a", a, "b", b, "accuracy")
    assert "depends on the accuracy (the order changes near 0.400)" in line
    far = [_point("b", 0.85, 3.0), _point("b", 0.95, 5.0)]
    line = compare("a", a, "b", far, "accuracy")
    assert "do not reach a common accuracy (a: 0.200–0.800; b: 0.850–0.950)" in line
    assert "b's Pareto points are all more accurate than a's" in line


def test_no_section_with_one_point_per_method_and_methods_split_by_their_other_knobs(tmp_path):
    _run(tmp_path, "lora", 1.0, 0.4, 5.0)
    _run(tmp_path / "b", "full", 1.0, 0.5, 3.0)
    report = build_report(read_runs([tmp_path]))
    assert report.frontier is None
    assert all(t.key != "frontier" for t in report.tables)
    # lora at two ranks, each at two rates: two methods of two points
    other = tmp_path / "ranks"
    for r, points in ((8, [(0.3, 1.0), (0.5, 4.0)]), (16, [(0.4, 2.0), (0.6, 6.0)])):
        for scale, (acc, delta) in zip((1.0, 3.0), points):
            _run(other, "lora", scale, acc, delta, r=r)
    fr = build_report(read_runs([other])).frontier
    assert sorted(fr.methods) == ["lora (r=16)", "lora (r=8)"]
    assert all(len(p) == 2 for p in fr.methods.values())
    assert len(fr.lines) == 1


def test_where_a_run_was_logged_does_not_make_it_another_method(tmp_path):
    # one sweep, tracking turned on halfway (or a run composed before tracking existed)
    _run(tmp_path, "lora", 0.3, 0.3, 5.0)
    _run(tmp_path, "lora", 1.0, 0.5, 9.0, top={"tracking": {"backend": "mlflow"}})
    runs = read_runs([tmp_path])
    assert sorted(r.variant for r in runs) == ["lora (train.lr_scale=0.3)",
                                               "lora (train.lr_scale=1.0)"]
    assert list(frontier_data(make_variants(runs), "choice_accuracy").methods) == ["lora"]
