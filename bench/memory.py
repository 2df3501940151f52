"""Peak memory, predicted against measured, of one run per strategy, each in a process of
its own: prompt, rag, lora, full and QLoRA. Measured is the run's peak resident set (CUDA:
peak allocated) less what the process held when the run started (harness.run.memory);
predicted is the memory model's peak for what the run computed (harness.cost.memory).

`make bench` measures the bundled model (section memory; the figures published on the
results page); the suite proves the same accounting on a small model of the same
architecture (tests/cost/test_memory_measured.py, model=small-random).

Each run trains and predicts anew (an artifact and prediction cache of its own) on the
converted model, machine profile and embeddings the cache already holds, with one torch
thread, and with glibc's default allocator settings: a test suite that keeps every freed
block (tests/conftest.MALLOC_REUSE) would measure a LoRA fit's resident peak at 3,076 MB
where a user's process holds 2,432 MB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# two steps reach the training peak (the first allocates AdamW's states, the second runs
# forward and backward beside them); a few predictions show the predict phase's
TUNE = ["limit=8", "strategy.train.max_steps=2", "strategy.data.paraphrases=0",
        "strategy.measure_forgetting=false"]
RUNS = {
    "prompt": ["strategy=prompt", "limit=32"],
    "rag": ["strategy=rag", "limit=32"],
    "lora": ["strategy=lora", *TUNE],
    "full": ["strategy=full", *TUNE],
    "qlora": ["strategy=lora", "strategy.adapter.quantize=4bit", *TUNE],
}
TASK = ["task.n_entities=90", "answer.batch_size=8"]
# The suite's allocator settings (tests/conftest.py), left out of a measured run's process.
ALLOCATOR_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def fresh_cache(shared: Path, work: Path) -> Path:
    """A cache of the run's own that shares `shared`'s converted models, tokenizers,
    profiles and embeddings, but not its trained artifacts or cached predictions."""
    own = work / "cache"
    own.mkdir(parents=True, exist_ok=True)
    for name in ("models", "tokenizers", "wheels", "profiles", "embeddings"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        if not (own / name).exists():
            (own / name).symlink_to(shared / name)
    return own


def run_alone(work: Path, name: str, overrides: list[str], model: list[str],
              shared_cache: Path, extra: tuple[str, ...] = ()) -> dict:
    """One run in a process of its own; its metrics.json (raises with the run's stderr when
    it fails)."""
    work = work.resolve()  # the run's process starts in it
    work.mkdir(parents=True, exist_ok=True)
    args = [*overrides, *TASK, *model, "seen_eval_limit=0", "torch_threads=1",
            "answer.generate=false", "progress=false", "prediction_cache=false",
            f"cache_dir={fresh_cache(shared_cache, work)}", f"hydra.run.dir={work / name}",
            *extra]
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_KEYS}
    done = subprocess.run([sys.executable, "-m", "harness.run.runner", *args], cwd=work,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads((work / name / "metrics.json").read_text())


def summary(name: str, m: dict) -> str:
    mem = m["memory"]
    return (f"{name} ({m['dtype']}): predicted {mem['predicted_mb']:.0f} MB "
            f"({mem['peak_phase']}), measured {mem['measured_mb']:.0f} MB, ratio {mem['ratio']}; "
            f"phases {mem['phases_mb']}")


def bench_memory(model: list[str], work: Path, shared_cache: Path | None = None,
                 names: tuple[str, ...] = tuple(RUNS)) -> dict:
    """Each strategy's predicted / measured peak, its phase, both figures, and its accuracy
    (prompt and rag: the bundled model cannot know the invented facts; passages state them)."""
    shared = shared_cache or Path(os.environ.get("ADAPTBENCH_CACHE")
                                  or Path.home() / ".cache" / "adaptbench")
    shutil.rmtree(work, ignore_errors=True)  # a run folder left complete would be skipped
    out: dict = {}
    for name in names:
        m = run_alone(work, name, RUNS[name], model, shared)
        mem = m["memory"]
        print(summary(name, m), flush=True)
        out |= {f"{name}_ratio": mem["ratio"], f"{name}_predicted_mb": round(mem["predicted_mb"]),
                f"{name}_measured_mb": round(mem["measured_mb"]), f"{name}_phase": mem["peak_phase"],
                f"{name}_dtype": m["dtype"]}
    out["worst_ratio_off"] = max(abs(out[f"{n}_ratio"] - 1) for n in names)
    return out
