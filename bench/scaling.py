"""Scaling (`make bench`, section "scaling"): harness-make-task and the index build (dense and
BM25) on the same kind of corpus at 1x, 4x and 16x its size, each in a process of its own:
wall seconds, peak memory (the process's maximum resident set), and the 16x / 1x time ratio,
which linear code keeps within 20x (fixed start-up costs make it smaller).

    python -m bench.scaling index DIR     build both indices over DIR (what the section times)
"""

from __future__ import annotations

import os
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


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one child process (os.wait4: its own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def bench_scaling(work: Path, scales: tuple[int, ...] = SCALES, base_docs: int = BASE_DOCS) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    out: dict = {}
    for scale in scales:
        corpus = work / f"x{scale}"
        out[f"x{scale}_mb"] = write_corpus(corpus, scale, base_docs) / 1e6
        env = {**os.environ, "ADAPTBENCH_CACHE": tempfile.mkdtemp(dir=work)}  # nothing cached
        s, mb = measure([sys.executable, "-m", "harness.data.generate.cli",
                         f"corpus_path={corpus}", f"out_dir={work / f'task{scale}'}",
                         "progress=false"], env)
        out[f"make_task_x{scale}_s"], out[f"make_task_x{scale}_peak_mb"] = s, mb
        s, mb = measure([sys.executable, "-m", "bench.scaling", "index", str(corpus)], env)
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


if __name__ == "__main__":
    if sys.argv[1] == "index":
        build_indices(Path(sys.argv[2]))
