"""harness-report --compare OLD NEW on hand-made sweeps with known outcomes: the changed
variant's paired difference and flipped items, none for the unchanged ones, the config
change, the decision, and plain words when the sweeps share no items or split."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.report.cli import main as report_main
from tests.report.browser import chromium_page, needs_chromium, open_items

N = 40


def _run(sweep: Path, strategy: str, correct: list[int], *, epochs: int = 3,
         split: str = "s1", prefix: str = "q") -> None:
    d = sweep / f"{strategy}_seed0"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "strategy": {"name": strategy, "train": {"epochs": epochs}},
         "model": {"name_or_path": "m"}, "results_dir": str(sweep)}))
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": 0, "n_examples": len(correct),
        "task": "t", "split_hash": split, "primary_metric": "choice_accuracy",
        "choice_accuracy": sum(correct) / len(correct), "seconds_per_query": 0.1,
        "build_s": 1.0, "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}))
    with (d / "predictions.jsonl").open("w") as f:
        for i, c in enumerate(correct):
            f.write(json.dumps({
                "id": f"{prefix}{i}", "question": f"Question {i}?", "gold": [f"gold {i}"],
                "choices": [f"gold {i}", f"other {i}"], "choice": 0 if c else 1,
                "scores": {"choice_correct": float(c)}, "usage": {"latency_s": 0.2}}) + "\n")


def _sweeps(tmp_path: Path, **new_kw) -> tuple[Path, Path]:
    prompt = [1, 0] * (N // 2)
    rag = [1] * 30 + [0] * 10
    lora_old = [1] * 10 + [0] * 30
    lora_new = [1] * 28 + [0] * 12  # items 10-27 go wrong -> right
    old, new = tmp_path / "old", tmp_path / "new"
    for sweep, lora, epochs in ((old, lora_old, 3), (new, lora_new, 1)):
        kw = new_kw if sweep == new else {}
        _run(sweep, "prompt", prompt, **kw)
        _run(sweep, "rag", rag, **kw)
        _run(sweep, "lora", lora, epochs=epochs, **kw)
    return old, new


def test_the_changed_variant_shows_its_difference_and_the_others_none(tmp_path, capsys):
    old, new = _sweeps(tmp_path)
    assert report_main(["--compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    md = (new / "compare.md").read_text()
    assert (new / "compare.html").stat().st_size > 2000
    changes = md.split("## Changes per variant")[1].split("\n## ")[0]
    lora = next(line for line in changes.splitlines() if line.startswith("| lora "))
    assert "| 40 | 0.250 [" in lora and "| +0.450 [" in lora and "McNemar (exact)" in lora
    assert "| 0 / 18 |" in lora  # right->wrong / wrong->right
    for name in ("prompt", "rag"):
        row = next(line for line in changes.splitlines() if line.startswith(f"| {name} "))
        assert "| +0.000 [+0.000, +0.000] | 1 |" in row and "| 0 / 0 |" in row
    assert "lora changed: choice_accuracy 0.250 → 0.700 (+0.450" in out
    assert "Identical on every shared item (change 0, p = 1): prompt, rag." in out
    assert "Decision changed" in out  # rag (0.75) led; lora (0.70) now ties with it
    assert "| lora | train.epochs: 3 → 1 |" in md and "| prompt | nothing |" in md
    flips = md.split("## Items that flipped")[1]
    assert flips.count("| lora | wrong → right | q") == 15 and "| 3 more |" in flips
    assert "| Question 10? | gold 10 | other 10 | gold 10 |" in flips


def test_sweeps_that_share_no_items_or_split_say_so(tmp_path, capsys):
    old, new = _sweeps(tmp_path, split="s2", prefix="x")
    assert report_main(["--compare", str(old), str(new)]) == 0
    md = (new / "compare.md").read_text()
    assert "The sweeps do not share a task split (split_hash)" in md
    assert "No item is in both sweeps" in md
    assert "not paired (no shared items)" in md and "## Items that flipped" not in md
    assert report_main(["--compare", str(old), str(tmp_path / "nope")]) == 2


@needs_chromium
def test_the_comparison_explorer_shows_both_answers_of_the_items_that_changed(tmp_path):
    old, new = _sweeps(tmp_path)
    assert report_main(["--compare", str(old), str(new)]) == 0
    url = (new / "compare.html").as_uri()
    with chromium_page() as page:
        changed = open_items(page, url + "#items/changed")
        flipped = open_items(page, url + "#" + "items/right=lora · new/wrong=lora · old")
        heads = page.eval_on_selector_all("table[data-items] th", "hs => hs.map(h => h.textContent)")
        page.click("tr[data-item=q10]")
        detail = page.text_content("tr[data-detail=q10]")
        assert page.errors == []
    assert changed == flipped == 18  # items 10-27 went wrong -> right; nothing else moved
    assert heads[2:-1] == [f"{v} · {s}" for v in ("lora", "prompt", "rag") for s in ("old", "new")]
    assert "lora · old — wrong" in detail and "lora · new — right" in detail
