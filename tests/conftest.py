"""Shared fixtures: an isolated cache, Hydra config composition, and tiny task files.

Under pytest-xdist (`make test` runs `-n <cores + 2> --dist loadgroup`) the workers share one cache
and one machine profile, each uses its share of the cores, and tests that share an
expensive module- or session-scoped fixture (a sweep, the Slurm cluster, a server) run on
one worker, so it is built once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from bench.small_model import small_random_gguf
from harness.export.llamacpp import LlamaServer, skip_reason
from harness.report.cli import main as report_main
from harness.run.runner import CONF_DIR
from tests import warm

# glibc serves an allocation over its mmap threshold (at most 32 MB) with a fresh mmap and
# unmaps it when freed, so every forward pass's logits (tokens x a 49,152-word vocabulary)
# are page-faulted in anew: 4.7 million minor faults and 13 s of system time in four tuning
# tests. Kept in the heap and reused instead, the same tests ran in 38 s instead of 54 s.
# Set before the xdist workers start, so they and every run they start inherit it.
MALLOC_REUSE = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def pytest_configure(config) -> None:
    """An xdist worker takes its share of the cores, for itself and the runs it starts
    (two workers each using every core would thrash); workers and runs reuse freed memory
    instead of page-faulting it in again (MALLOC_REUSE); harness commands that tests and
    the benchmark's sections start with subprocess.run fork from a warm helper per worker
    (tests/warm.py; ADAPTBENCH_TEST_WARM=0 starts each one fresh)."""
    for key, value in MALLOC_REUSE.items():
        os.environ.setdefault(key, value)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    subprocess.run = warm.run  # harness commands start warm (tests/warm.py)
    if config.getoption("dist", "no") == "loadgroup" and not xdist_can_group():
        raise pytest.UsageError(
            f"pytest {pytest.__version__} and this pytest-xdist cannot group tests (--dist "
            "loadgroup): xdist would split the tests that share a cluster, a server or a "
            "sweep over its workers. Install the versions pyproject.toml's dev extra asks for.")


def pytest_unconfigure(config) -> None:
    warm.ZYGOTE.close()


# ADAPTBENCH_TEST_TIMELINE=<file>: each test's worker, start, seconds and CPU seconds (the
# worker's and the children it waited for) appended as one JSON line, to see where the
# suite's time goes and how evenly its workers are loaded (tools: bench/suite_timeline.py).
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = os.environ.get("ADAPTBENCH_TEST_TIMELINE")
    if not path:
        yield
        return
    import resource

    def cpu() -> float:
        own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
                + warm.ZYGOTE.children_cpu_s)  # the commands the warm launcher ran

    start, cpu0 = time.time(), cpu()
    yield
    row = {"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
           "start": start, "s": time.time() - start, "cpu_s": cpu() - cpu0}
    with open(path, "a", encoding="utf-8") as f:  # one short line per write: appends do not interleave
        f.write(json.dumps(row) + "\n")


def xdist_can_group() -> bool:
    """Does pytest read the node id that pytest-xdist (3.8) rewrites to group a test?
    (pytest 9.2 reads another attribute, and xdist's groups fall apart silently.)"""
    from _pytest.nodes import Node

    class Probe:
        _nodeid, _id = "test@group", "test"

    try:
        return Node.nodeid.fget(Probe()) == "test@group"
    except AttributeError:
        return False


# Fixtures of these scopes, defined here, are what is expensive to build twice.
SHARED_SCOPES = ("session", "package", "module")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """With --dist loadgroup: a test using one of our module- or session-scoped fixtures
    joins that fixture's group (xdist then runs the group on one worker)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        for name in info.names_closure if info else ():
            defs = info.name2fixturedefs.get(name) or ()
            d = defs[-1] if defs else None
            if (d and d.scope in SHARED_SCOPES and d.baseid.startswith("tests")
                    and name != "isolated_cache"):
                item.add_marker(pytest.mark.xdist_group(f"{d.baseid}::{name}"))
                break


def shared_tmp(tmp_path_factory) -> Path:
    """The session's temporary root: the same folder for every xdist worker (a worker's
    basetemp is a child of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Converted models and embeddings go to one directory for the session (shared by its
    xdist workers: cache entries are built under a lock) unless the developer points
    ADAPTBENCH_CACHE at a warm one."""
    path = Path(os.environ.get("ADAPTBENCH_CACHE") or shared_tmp(tmp_path_factory) / "cache")
    path.mkdir(parents=True, exist_ok=True)
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


# Served models: llama.cpp's OpenAI-compatible server on the bundled GGUF (harness/export/llamacpp.py),
# one for the session; tests that stop a server start their own.
@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> LlamaServer:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def small_server(tmp_path_factory) -> LlamaServer:
    """llama.cpp serving model=small-random's weights (an f32 GGUF made by llama.cpp's own
    converter): what a served model computes, checked against the same weights in process
    in seconds rather than minutes."""
    from harness.export.gguf import missing_reason

    reason = skip_reason() or missing_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("small-served")
    gguf, hf = small_random_gguf(folder)
    server = LlamaServer(folder, model=gguf, alias="small-random", tokenizer=str(hf)).start()
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


def kill_while_running(proc: subprocess.Popen, metrics: Path, timeout_s: float = 300) -> None:
    """SIGKILL `proc` (started in a session of its own) a second after the run whose
    metrics.json is `metrics` says it is running; fails if it never does."""
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline:
            if metrics.is_file() and json.loads(metrics.read_text() or "{}").get("status") == "running":
                time.sleep(1.0)  # well into its work
                return
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        pytest.fail(f"{metrics.parent.name} never started")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
