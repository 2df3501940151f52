"""experiment=fair end to end on the tiny model: trials on the validation split only, one test
run per strategy reusing what its trial fitted, a killed search resumed without rerunning
finished trials, and bad input refused in one line before any trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cost.prices import run_usd
from harness.report.cli import main as report_main
from harness.search.select import item_se
from tests.conftest import kill_while_running
from tests.report.browser import chromium_page, needs_chromium, open_items

TINY = ["model=tiny-random", "task.n_entities=30", "answer.generate=false", "progress=false"]


def _search(sweep: Path, *args: str, wait: bool = True, timeout: int = 900):
    flags = [a for a in args if a.startswith("--")]  # Hydra's flags come first
    cmd = [sys.executable, "-m", "harness.run.runner", "-m", *flags, "experiment=fair", *TINY,
           *[a for a in args if a not in flags], f"hydra.sweep.dir={sweep}"]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _metrics(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))}


def _ids(run_dir: Path) -> set[str]:
    return {json.loads(line)["id"] for line in (run_dir / "predictions.jsonl").read_text().splitlines()}


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """prompt and lora, 3 trials each (lora cut to a few steps)."""
    sweep = tmp_path_factory.mktemp("fair") / "sweep"
    res = _search(sweep, "strategy=prompt,lora", "search.trials=3",
                  "++per_strategy.lora.train.max_steps=3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert report_main([str(sweep)]) == 0
    return sweep


def test_trials_see_the_validation_split_only_and_each_strategy_is_tested_once(searched):
    m = _metrics(searched)
    trials = {n: x for n, x in m.items() if "_trial" in n}
    finals = {n: x for n, x in m.items() if n.endswith("_final")}
    assert sorted(trials) == [f"{s}_trial0{i}" for s in ("lora", "prompt") for i in range(3)]
    assert sorted(finals) == ["lora_final", "prompt_final"]  # exactly one test run each
    split = json.loads((searched / "prompt_final" / "metrics.json").read_text())["split_sizes"]
    for name, x in trials.items():
        assert x["status"] == "complete" and x["split"] == "val" and x["n_examples"] == split["val"]
        assert x["search"]["phase"] == "trial" and x["seen"] is None  # no train-split pass
        assert not (searched / name / "predictions_seen.jsonl").exists()
    val_ids = set().union(*(_ids(searched / n) for n in trials))
    test_ids = set().union(*(_ids(searched / n) for n in finals))
    assert len(val_ids) == split["val"] and len(test_ids) == split["test"]
    assert not val_ids & test_ids
    # every trial had ended before the first test prediction was made
    last_trial = max(x["finished_at"] for x in trials.values())
    assert all(x["started_at"] >= last_trial for x in finals.values())
    for name, x in finals.items():  # search.select=one_se: the cheapest within 1 SE of the best
        assert x["split"] == "test" and x["search"]["phase"] == "final"
        study = name.split("_")[0]
        chosen = trials[f"{study}_trial{x['search']['trial']:02d}"]
        own = {n: t for n, t in trials.items() if n.startswith(study)}
        value = {n: t[t["primary_metric"]] for n, t in own.items()}
        top = max(own, key=lambda n: value[n])
        se = item_se(searched / top, own[top]["primary_metric"])
        near = [n for n in own if value[n] >= value[top] - se]
        assert chosen[chosen["primary_metric"]] >= value[top] - se
        assert run_usd(chosen) <= min(run_usd(own[n]) for n in near)
    # the tuned test run reused its trial's adapter: no retraining
    lora = finals["lora_final"]
    assert lora["fit"]["cache_hit"] is True
    chosen = trials[f"lora_trial{lora['search']['trial']:02d}"]
    assert lora["fit"]["notes"]["artifact_key"] == chosen["fit"]["notes"]["artifact_key"]


def test_the_chosen_tuned_config_is_tested_with_three_seeds(searched):
    """search.final_seeds=3 (the fair preset): lora's chosen config is tested again under
    seeds 1 and 2, trained anew; prompt, deterministic, is not multiplied. The report pools
    the seeds and says how often the order held (P(A > B))."""
    m = _metrics(searched)
    assert sorted(n for n in m if n.startswith("lora_final")) == [
        "lora_final", "lora_final_seed1", "lora_final_seed2"]
    assert not any(n.startswith("prompt_final_seed") for n in m)
    assert sorted(m[n]["seed"] for n in m if n.startswith("lora_final")) == [0, 1, 2]
    assert m["lora_final_seed1"]["fit"]["cache_hit"] is False  # its own training seed
    assert {m[n]["search"]["trial"] for n in m if n.startswith("lora_final")} == \
        {m["lora_final"]["search"]["trial"]}
    md = (searched / "report.md").read_text()
    accuracy = md.split("## Accuracy")[1].split("\n## ")[0]
    lora_row = next(line for line in accuracy.splitlines() if line.startswith("| lora |"))
    assert lora_row.split("|")[2].strip() == "3"  # seeds
    pairs = md.split("## Paired comparisons")[1].split("\n## ")[0]
    row = next(line for line in pairs.splitlines() if line.startswith("| ") and "lora" in line
               and "prompt" in line)
    assert "[" in row.split("|")[9]  # P(A > B) with its interval over seed pairs
    decision = md.split("## Decision summary")[1].split("\n## ")[0]
    assert "Order" in decision or "Order not stable" in decision


def test_the_report_has_the_tuning_section_and_ranks_the_chosen_configs(searched):
    md = (searched / "report.md").read_text()
    assert "## Tuning" in md and "## Tuning: every trial" in md
    assert "A fair contest**: each strategy was tuned with 3 trials on" in md
    assert "to retrain when the data changes" in md and "Tuning budget:" in md
    assert (searched / "plots" / "tuning.png").is_file()
    accuracy = md.split("## Accuracy")[1].split("##")[0]
    assert "| prompt |" in accuracy and "| lora |" in accuracy  # the finals, plainly named
    assert accuracy.count("\n| ") == 3  # header + one row per strategy: no trial among them
    # a comparison quotes the verdict, not the note on how the contest was run
    assert report_main(["--compare", str(searched), str(searched)]) == 0
    quoted = (searched / "compare.md").read_text().split("New sweep's decision: ")[1].split("\n")[0]
    assert quoted.startswith("**Accuracy") and "A fair contest" not in quoted, quoted


def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["strategy=prompt,lora", "search.trials=3", "++per_strategy.lora.train.max_steps=40",
            "search.final_seeds=1"]
    proc = _search(sweep, *args, wait=False)
    kill_while_running(proc, sweep / "lora_trial01" / "metrics.json", timeout_s=600)
    before = _metrics(sweep)
    finished = {n: m for n, m in before.items() if m["status"] == "complete"}
    assert sorted(finished) == ["lora_trial00", "prompt_trial00", "prompt_trial01",
                                "prompt_trial02"]
    res = _search(sweep, *args)
    assert res.returncode == 0, res.stderr[-3000:]
    after = _metrics(sweep)
    for name, m in finished.items():  # not rerun: the same record, started at the same time
        assert after[name] == m
    assert sorted(after) == sorted([*finished, "lora_final", "lora_trial01", "lora_trial02",
                                    "prompt_final"])  # no trial asked beyond the three
    assert all(m["status"] == "complete" for m in after.values())
    assert "resuming 2 trial(s)" in res.stdout + res.stderr


@pytest.mark.parametrize("args, says", [
    (["strategy=prompt,rag", "+search.space.rag.no_such_knob=[1,2]"],
     "search.space.rag.no_such_knob: the strategy has no key 'no_such_knob'"),
    (["strategy=prompt", "search.trials=0"], "search.trials must be >= 1"),
    (["strategy=mine", "--config-dir={conf}"], "search.space.mine is empty"),
    (["strategy=prompt", "task.split_ratios=[0.5,0,0.5]"],
     "has no validation items, and the search scores its trials on them only"),
    (["strategy=prompt,rag", "seed=0,1"], "the search sweeps strategies only, not 'seed'"),
])
def test_bad_input_fails_in_one_line_before_any_trial(tmp_path, args, says):
    sweep = tmp_path / "sweep"
    conf = _own_strategy(tmp_path, space="")
    res = _search(sweep, *[a.format(conf=conf) for a in args], timeout=300)
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("harness-run: error: ") and says in lines[-1], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not list(sweep.glob("*/metrics.json"))  # no trial ran


def test_few_validation_items_warn_with_what_they_can_resolve(tmp_path):
    res = _search(tmp_path / "sweep", "strategy=prompt", "search.trials=1",
                  "task.n_entities=10", "task.split_ratios=[0.5,0.2,0.3]")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "has only 8 validation items" in log and "cannot be told apart" in log


def _own_strategy(root: Path, space: str) -> Path:
    """A config dir with a strategy of the user's own (prompting, renamed) and its space."""
    conf = root / "myconf"
    (conf / "strategy").mkdir(parents=True)
    (conf / "search").mkdir()
    (conf / "strategy" / "mine.yaml").write_text(
        "_target_: strategies.prompt.PromptStrategy\nname: mine\nk_shot: 0\n")
    (conf / "search" / "mine.yaml").write_text(space)
    return conf


def test_a_users_strategy_declares_its_own_space(tmp_path):
    conf = _own_strategy(tmp_path, "k_shot: [1, 2]\n")
    sweep = tmp_path / "sweep"
    res = _search(sweep, f"--config-dir={conf}", "strategy=mine", "search.trials=2")
    assert res.returncode == 0, res.stderr[-3000:]
    m = _metrics(sweep)
    assert sorted(m) == ["mine_final", "mine_trial00", "mine_trial01"]
    assert {x["fit"]["notes"]["k_shot"] for n, x in m.items() if "trial" in n} <= {1, 2}


def test_tpe_and_a_cost_budget_stop_a_strategy_between_trials(tmp_path):
    """TPE asks one trial at a time; a budget below one trial's modelled cost stops the
    strategy after its first trial, and its best is still tested."""
    sweep = tmp_path / "sweep"
    res = _search(sweep, "strategy=prompt", "search.trials=3", "search.sampler=tpe",
                  "search.budget_usd=1e-12")
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(_metrics(sweep)) == ["prompt_final", "prompt_trial00"]
    assert "has spent $" in res.stdout + res.stderr and "no more trials" in res.stdout + res.stderr


def test_a_search_stopped_before_its_test_runs_still_reports_its_trials(searched, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(searched, partial, ignore=shutil.ignore_patterns(
        "*_final", "*_final_seed*", "report*", "plots", "summary*", "items*"))
    assert report_main([str(partial)]) == 0
    md = (partial / "report.md").read_text()
    assert "No run completed" in md and "## Tuning: every trial" in md
    assert "No test run for lora, prompt" in md


@needs_chromium
def test_the_item_explorer_keeps_the_trials_validation_items_apart(searched):
    """The Items section's columns are each strategy's test run; the trials' validation
    predictions sit behind the split switch, one column per trial, never mixed in."""
    frame = pd.read_parquet(searched / "items.parquet")
    val, test = frame[frame.split == "val"], frame[frame.split == "test"]
    assert sorted(test.variant.unique()) == ["lora", "prompt"]
    assert val.variant.nunique() == 6 and val.variant.str.startswith("trial ").all()
    assert not set(val.id) & set(test.id)
    url = (searched / "report.html").as_uri()
    with chromium_page() as page:
        n_test = open_items(page, url + "#items")
        test_columns = page.eval_on_selector_all("table[data-items] th", "hs => hs.length")
        folded = page.eval_on_selector_all("table[data-items] td .seeds", "ds => ds.map(d => d.textContent)")
        first = page.get_attribute("tr[data-item]", "data-item")
        page.click(f"tr[data-item='{first}']")
        lora_detail = page.text_content(f"tr[data-detail='{first}'] section[data-variant=lora]")
        n_val = open_items(page, url + "#items/split=val")
        val_columns = page.eval_on_selector_all("table[data-items] th", "hs => hs.length")
        shown = page.eval_on_selector_all("tr[data-item]", "rs => rs.map(r => r.dataset.item)")
        assert page.errors == []
    assert (n_test, n_val) == (test.id.nunique(), val.id.nunique())
    assert (test_columns, val_columns) == (2 + 2 + 1, 2 + 6 + 1)  # question, gold, ..., right
    # lora's three seeds fold into one column; its answers grouped by identical text
    assert len(folded) == n_test and all(t.endswith("of 3 seeds right") for t in folded)
    assert "seeds right" in lora_detail and "×)" in lora_detail
    assert set(shown) == set(val.id)
