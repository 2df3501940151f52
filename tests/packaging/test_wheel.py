"""The installed package, outside any checkout: build the wheel, install it (not editable)
into a fresh virtual environment, and from a temporary directory run a sweep over a
built-in strategy and two strategies of the user's own module, whose YAML, task and
experiment live in the user's config folder (--config-dir); then harness-report.

The fresh environment borrows the third-party dependencies (torch, transformers, ...)
from this one through a .pth line, so the test checks what the wheel itself carries
without downloading gigabytes; `harness` and `strategies` come from the wheel only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pandas as pd

from tests.conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", "results", "build", "dist", "*.egg-info",
                              "__pycache__", ".pytest_cache", ".ruff_cache", "bench")

STRATEGY_YAML = {
    "toy_trained": "_target_: myplugins.ToyTrained\nname: toy_trained\nsteps: 3\nrank: 4\n",
    "toy_citing": "_target_: myplugins.ToyCiting\nname: toy_citing\nk: 2\n",
}
TASK_YAML = """name: colours
kind: files
corpus_path: data/corpus.jsonl
examples_path: data/examples.jsonl
split_ratios: [0.5, 0.1, 0.4]
split_seed: 0
new_version: {corpus_path: null, examples_path: null}
"""
EXPERIMENT_YAML = """# @package _global_
defaults:
  - override /task: colours
answer:
  generate: false
hydra:
  sweeper:
    params:
      strategy: prompt,toy_trained,toy_citing
"""


def _sh(args: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"{args}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res.stdout + res.stderr


def _user_project(home: Path) -> None:
    """What a user has: their module, their config folder, their data."""
    shutil.copy(Path(__file__).with_name("plugins.py"), home / "myplugins.py")
    for group, files in (("strategy", STRATEGY_YAML), ("task", {"colours": TASK_YAML}),
                         ("experiment", {"mine": EXPERIMENT_YAML})):
        (home / "myconf" / group).mkdir(parents=True)
        for name, text in files.items():
            (home / "myconf" / group / f"{name}.yaml").write_text(text)
    (home / "data").mkdir()
    shades = ["amber", "cobalt", "crimson", "olive", "teal", "violet", "ochre", "slate"]
    write_jsonl(home / "data" / "corpus.jsonl", [
        {"id": f"d{i}", "title": f"Lamp {i}", "text": f"Lamp {i} glows {c}. Its shade is {c}."}
        for i, c in enumerate(shades)])
    write_jsonl(home / "data" / "examples.jsonl", [
        {"id": f"q{i}-{j}", "question": q.format(i=i), "answer": c,
         "choices": [c, shades[(i + 1) % 8], shades[(i + 3) % 8]], "source_ids": [f"d{i}"]}
        for i, c in enumerate(shades)
        for j, q in enumerate(["What colour does lamp {i} glow?", "Which shade has lamp {i}?",
                               "Lamp {i} is which colour?"])])


def _table(md: str, title: str) -> pd.DataFrame:
    """A Markdown table of report.md by its section title."""
    lines = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines if ln.startswith("|")]
    return pd.DataFrame(rows[2:], columns=rows[0]).set_index("variant")


def test_installed_wheel_runs_user_plugins_and_reports_them(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    _sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", tmp_path / "dist", src], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("adaptbench-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(_sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).strip())
    (site / "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _sh([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp_path)

    home = tmp_path / "home"
    home.mkdir()
    _user_project(home)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env["HF_HUB_OFFLINE"] = "1"
    where = _sh([py, "-c", "import harness, strategies; print(harness.__file__, "
                 "strategies.__file__)"], cwd=home, env=env)
    assert str(ROOT) not in where and str(site) in where  # the wheel's copy, not the checkout

    bin_dir = env_dir / "bin"
    sweep = home / "sweep"
    _sh([bin_dir / "harness-run", "-m", "--config-dir", "myconf", "experiment=mine",
         "model=tiny-random", "progress=false", f"hydra.sweep.dir={sweep}"], cwd=home, env=env)
    out = _sh([bin_dir / "harness-report", sweep], cwd=home, env=env)
    assert "Decision summary" in out
    # harness-track from the wheel: the sweep into the local MLflow store beside the results
    out = _sh([bin_dir / "harness-track", sweep], cwd=home, env=env)
    assert "3 logged, 0 already there" in out
    assert (home / "results" / "mlflow" / "mlflow.db").is_file()

    metrics = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    assert sorted(metrics) == ["0_prompt_seed0", "1_toy_trained_seed0", "2_toy_citing_seed0"]
    assert all(m["status"] == "complete" for m in metrics.values()), metrics
    trained, citing = metrics["1_toy_trained_seed0"], metrics["2_toy_citing_seed0"]
    assert trained["strategy_class"] == "myplugins.ToyTrained" and trained["trains"] is True
    assert citing["can_cite"] is True and citing["retrieval_k"] == 2
    assert trained["leakage"]["checked"] and trained["seen"]["n_examples"] > 0

    md = (sweep / "report.md").read_text()
    forgetting = _table(md, "Forgetting")
    assert forgetting.loc["prompt", "change"] == "not tuned"
    fg = trained["fit"]["forgetting"]  # the change, with its block-bootstrap interval
    assert forgetting.loc["toy_trained", "change"] == (
        f"{fg['control_perplexity_delta']:+.2f} [{fg['control_perplexity_delta_low']:+.2f}, "
        f"{fg['control_perplexity_delta_high']:+.2f}]")
    cost = _table(md, "Cost")
    break_even = [c for c in cost.columns if c.startswith("break-even vs")]
    assert break_even == ["break-even vs prompt", "break-even vs toy_citing"]
    assert cost.loc["toy_trained", "break-even vs prompt"] not in ("—", "n/a")
    assert cost.loc["toy_citing", "break-even vs prompt"] == "—"  # untrained: no build to repay
    attribution = _table(md, "Source attribution")
    assert attribution.loc["toy_trained", "recall@k"] == "cannot cite"
    assert attribution.loc["toy_citing", "recall@k"] == f"{citing['recall_at_k']:.3f}"
    assert citing["recall_at_k"] > 0.5  # word overlap finds the lamp's document
    seen = _table(md, "Seen vs unseen questions")
    assert seen.loc["toy_trained", "seen (train split)"] != "not tuned"
