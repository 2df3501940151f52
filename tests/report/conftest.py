"""A session-wide quick sweep on the tiny model, shared by the report tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.cli import main as report_main


@pytest.fixture(scope="session")
def quick_sweep(tmp_path_factory) -> Path:
    """experiment=quick on the tiny model (tuning cut to a few steps), plus one failing run
    written into the same sweep directory."""
    sweep = tmp_path_factory.mktemp("quick") / "sweep"
    args = [sys.executable, "-m", "harness.run.runner", "-m", "experiment=quick", "model=tiny-random",
            "progress=false", "+per_strategy.lora.train.max_steps=4",
            "+per_strategy.full.train.max_steps=4", "+per_strategy.hybrid.train.max_steps=4",
            f"hydra.sweep.dir={sweep}"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "run 5 of 5" in res.stderr + res.stdout  # sweep progress
    bad = subprocess.run(
        [sys.executable, "-m", "harness.run.runner", "model=tiny-random", "strategy=rag",
         "strategy.k=-1", "progress=false", f"hydra.run.dir={sweep}/5_rag_seed0_bad"],
        capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert report_main([str(sweep)]) == 0
    return sweep
