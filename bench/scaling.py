"""Scaling (`make bench`, section "scaling"): harness-make-task and the index build (dense and
BM25) on the same kind of corpus at 1x, 4x and 16x its size, each in a process of its own:
wall seconds, peak memory (the process's own high-water resident set, VmHWM), and the 16x / 1x
time ratio, which linear code keeps within 20x (fixed start-up costs make it smaller).

    python -m bench.scaling index DIR     build both indices over DIR (what the section times)
    python -m bench.scaling peak FILE MODULE ARGS...
                                          run MODULE as __main__, then write its peak MB to FILE
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stress import prose

BASE_DOCS = 20  # documents at 1x, ~1,000 words each (~0.11 MB; 16x: ~1.8 MB)
SCALES = (1, 4, 16)


def write_corpus(root: Path, scale: int, base_docs: int = BASE_DOCS) -> int:
    """scale x base_docs documents of prose, each with a title; returns the bytes written."""
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(base_docs * scale):
        text = f"# Record {i}\n\n" + "\n\n".join(prose(12, seed=i * 10 + p) for p in range(8))
        (root / f"doc{i:05d}.md").write_text(text)
        total += len(text.encode())
    return total


def measure(module: str, args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of `python -m module args` in a process of its own.
    The peak is the child's VmHWM, read by the child as it ends: the rusage maximum that Linux
    reports for a child includes the forking parent's resident set (it survives exec), so a
    test worker of 2 GB would make every child look 2 GB large."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        cmd = [sys.executable, "-m", "bench.scaling", "peak", peak.name, module, *args]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args[:3])} failed: {res.stderr.decode()[-2000:]}")
        return wall, float(peak.read())


def bench_scaling(work: Path, scales: tuple[int, ...] = SCALES, base_docs: int = BASE_DOCS) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    out: dict = {}
    for scale in scales:
        corpus = work / f"x{scale}"
        out[f"x{scale}_mb"] = write_corpus(corpus, scale, base_docs) / 1e6
        env = {**os.environ, "ADAPTBENCH_CACHE": tempfile.mkdtemp(dir=work)}  # nothing cached
        s, mb = measure("harness.data.generate.cli", [f"corpus_path={corpus}",
                        f"out_dir={work / f'task{scale}'}", "progress=false"], env)
        out[f"make_task_x{scale}_s"], out[f"make_task_x{scale}_peak_mb"] = s, mb
        s, mb = measure("bench.scaling", ["index", str(corpus)], env)
        out[f"index_x{scale}_s"], out[f"index_x{scale}_peak_mb"] = s, mb
    top, low = max(scales), min(scales)
    for what in ("make_task", "index"):
        out[f"{what}_x{top}_over_x{low}"] = out[f"{what}_x{top}_s"] / out[f"{what}_x{low}_s"]
    return out


def build_indices(root: Path) -> None:
    """The dense (MiniLM + FAISS) and BM25 indices over the corpus, as rag would build them."""
    from harness.data import read_corpus
    from harness.retrieval import BM25Retriever, Chunker, ChunkerSettings, DenseRetriever, get_embedder
    from harness.system import config_dir, group_config

    docs, _ = read_corpus(root)
    embedder = get_embedder(group_config("embedder", "minilm", [config_dir()]))
    DenseRetriever(embedder).fit(docs)
    BM25Retriever(chunker=Chunker(ChunkerSettings("words", 120, 20))).fit(docs)


def run_and_record_peak(peak_file: str, module: str, args: list[str]) -> None:
    from harness.system import process_peak_mb

    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:  # Hydra's main exits; a failure still fails the child
        if e.code not in (0, None):
            raise
    finally:
        Path(peak_file).write_text(f"{process_peak_mb():.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "index":
        build_indices(Path(sys.argv[2]))
    elif sys.argv[1] == "peak":
        run_and_record_peak(sys.argv[2], sys.argv[3], sys.argv[4:])
