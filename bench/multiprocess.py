"""Data-parallel training speed (`make bench`, section "multiprocess"): the same LoRA
training run (the built-in task, quick preset sizes, `train_steps` optimizer steps of a
16-row global batch) in one process using every core, and under `accelerate launch` in
two processes of one thread each (batch 8 per process, grad_accum 1: the same rows per
step). Reports the training rows per second of each, from the artifact's own clock (the
Trainer's loop, without model loading), and their ratio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
RUN = ["experiment=quick", "strategy=lora", "strategy.measure_forgetting=false",
       "strategy.train.batch_size=8", "limit=8", "progress=false", "cost.model_time=false"]


def _train(work: Path, model: list[str], steps: int, processes: int) -> dict:
    args = [*RUN, *model, f"strategy.train.max_steps={steps}", f"cache_dir={work}/cache",
            f"hydra.run.dir={work}/run",
            f"strategy.train.grad_accum={2 // processes}",
            f"torch_threads={(os.cpu_count() or 2) // processes}"]
    cli = [str(BIN / "harness-run"), *args]
    if processes > 1:
        cli = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes",
               str(processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", "0", *cli]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cli, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"the {processes}-process training failed:\n{res.stderr[-3000:]}")
    notes = json.loads((work / "run" / "metrics.json").read_text())["fit"]["notes"]
    train = json.loads((Path(notes["artifact_dir"]) / "train.json").read_text())
    rows = train["steps"] * notes["global_batch"]
    return {"processes": notes["processes"], "global_batch": notes["global_batch"],
            "steps": train["steps"], "train_s": train["wall_s"], "rows_per_s": rows / train["wall_s"],
            "tokens_per_s": train["train_tokens"] / train["wall_s"]}


def bench_multiprocess(model: list[str], work: Path, steps: int = 6) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    one = _train(work / "one", model, steps, 1)
    two = _train(work / "two", model, steps, 2)
    return {"one_process_rows_per_s": one["rows_per_s"],
            "two_process_rows_per_s": two["rows_per_s"],
            "one_process_tokens_per_s": one["tokens_per_s"],
            "two_process_tokens_per_s": two["tokens_per_s"],
            "two_over_one": two["rows_per_s"] / one["rows_per_s"],
            "global_batch": one["global_batch"], "steps": one["steps"],
            "cpus": os.cpu_count() or 0}
