"""Shared fixtures: an isolated cache, Hydra config composition, and tiny task files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from bench.llama_server import LlamaServer, skip_reason
from harness.report.cli import main as report_main
from harness.run.runner import CONF_DIR


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Converted models and embeddings go to a per-session directory unless the developer
    points ADAPTBENCH_CACHE at a warm one."""
    path = Path(os.environ.get("ADAPTBENCH_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["ADAPTBENCH_CACHE"] = str(path)
    # Machine profiles are calibrated once for the session, also by the runs that bring a
    # cache of their own (tests of calibration itself pass cost.profile_dir=null)
    os.environ.setdefault("ADAPTBENCH_PROFILE_DIR", str(path / "profiles"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return path


def compose_cfg(overrides: list[str], results: Path | None = None) -> DictConfig:
    extra = [f"results_dir={results}"] if results else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=["progress=false", *extra, *overrides])


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def small_task_files(tmp_path: Path) -> tuple[Path, Path]:
    """A valid user task: 6 documents, 12 examples without splits."""
    corpus = [{"id": f"d{i}", "title": f"Item {i}", "text": f"Item {i} is coloured shade{i}."}
              for i in range(6)]
    examples = []
    for i in range(6):
        for j, q in enumerate(["What colour is item {i}?", "Which shade does item {i} have?"]):
            examples.append({"id": f"q{i}-{j}", "question": q.format(i=i),
                             "answer": f"shade{i}",
                             "choices": [f"shade{i}", f"shade{(i + 1) % 6}"],
                             "source_ids": [f"d{i}"]})
    return write_jsonl(tmp_path / "corpus.jsonl", corpus), write_jsonl(
        tmp_path / "examples.jsonl", examples)


# Served models: llama.cpp's OpenAI-compatible server on the bundled GGUF (bench/llama_server.py),
# one for the session; tests that stop a server start their own.
@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> LlamaServer:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    yield server
    server.stop()


@pytest.fixture
def own_llama_server(tmp_path):
    """A server of the test's own, stopped (if still running) at the end."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    servers = []

    def make(**kw) -> LlamaServer:
        servers.append(LlamaServer(tmp_path, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


# A session-wide quick sweep on the tiny model, shared by the report and cost tests.
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
