"""Data-parallel training under `accelerate launch --multi_gpu --num_processes 2` on this CPU
(torchrun processes, the gloo backend), on the tiny model: the same loss curve as one
process with the same global batch, the batch and learning rate the config says, and
nothing written by rank 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from harness.cache import cached_dir

BIN = Path(sys.executable).parent
COMMON = ["model=tiny-random", "task.n_entities=6", "task.n_paraphrases=1",
          "strategy.train.max_steps=3", "strategy.train.batch_size=4",
          "strategy.train.lr_schedule=constant", "strategy.train.warmup_ratio=0",
          "answer.generate=false", "strategy.measure_forgetting=false", "seen_eval_limit=4",
          "cost.model_time=false", "progress=false", "torch_threads=1"]
ADAPTER = ["strategy.adapter.dropout=0"]  # dropout draws differ between the two layouts


def _harness_run(results: Path, args: list[str], processes: int) -> dict:
    cli = [str(BIN / "harness-run"), *COMMON, *args, f"results_dir={results}",
           f"cache_dir={results}/cache", f"hydra.run.dir={results}/run"]
    if processes > 1:
        cli = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes",
               str(processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", "0", *cli]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cli, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((results / "run" / "metrics.json").read_text())


def _files(root: Path) -> list[str]:
    """Every file under root, hashes in names masked (keys differ with the batch layout)."""
    return sorted(re.sub(r"[0-9a-f]{12,}", "#", str(p.relative_to(root)))
                  for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("strategy,shard", [("lora", "none"), ("full", "fsdp")])
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, strategy, shard):
    """lora data-parallel (DDP); full tuning sharded (FSDP2 on gloo: each process holds half
    the weights and AdamW states, and rank 0 predicts from the gathered state dict)."""
    extra = [f"strategy={strategy}", *(ADAPTER if strategy == "lora" else [])]
    two = _harness_run(tmp_path / "two", [*extra, "strategy.train.grad_accum=1",
                                          f"strategy.train.shard={shard}"], 2)
    one = _harness_run(tmp_path / "one", [*extra, "strategy.train.grad_accum=2"], 1)
    n2, n1 = two["fit"]["notes"], one["fit"]["notes"]
    # the global batch and the rate are what the config says (accelerate scales neither)
    assert (n2["processes"], n1["processes"]) == (2, 1)
    assert n2["global_batch"] == n1["global_batch"] == 4 * 1 * 2 == 4 * 2 * 1
    lr = 1e-3 if strategy == "lora" else 1e-4  # the strategies' configured rates
    assert n2["lr_logged_max"] == pytest.approx(lr) == n1["lr_logged_max"]
    # the same rows per step, so the same tokens and micro-batches ...
    assert two["fit"]["train_tokens"] == one["fit"]["train_tokens"]
    mode = "frozen" if strategy == "lora" else "full"
    assert two["build_work"][f"train_passes/{mode}"] == one["build_work"][f"train_passes/{mode}"] == 6
    # ... and the same loss curve, step by step, and validation loss
    curve2 = json.loads((Path(n2["artifact_dir"]) / "train.json").read_text())["train_loss"]
    curve1 = json.loads((Path(n1["artifact_dir"]) / "train.json").read_text())["train_loss"]
    assert len(curve2) == len(curve1) == 3
    assert curve2 == pytest.approx(curve1, rel=1e-4)
    assert n2["val_loss"] == pytest.approx(n1["val_loss"], rel=1e-4)
    assert curve1[-1] != curve1[0]  # it trained
    assert n2["sharded"] is (shard == "fsdp") and n1["sharded"] is False
    if shard == "fsdp":
        _sharded_like_one(two, one, tmp_path)
    # the processes were counted, and the cost model says why it does not model them
    assert two["modelled"]["off"].startswith("trained by 2 data-parallel processes")
    # only rank 0 wrote: the same files as the one-process run, in the run dir and the
    # cache (rank 1's Hydra files went to a temporary folder, its artifact nowhere)
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    assert len(list((tmp_path / "two" / "cache" / "artifacts").glob(f"{strategy}-*[!k]"))) == 1


def _sharded_like_one(two: dict, one: dict, tmp_path: Path) -> None:
    """Half the model states per process; the saved weights those of one process (float32
    sums in another order: within 1e-5, while AdamW moves a weight by about the rate, 1e-4,
    per step); predictions from them."""
    s2, s1 = two["fit"]["notes"]["states_mb"], one["fit"]["notes"]["states_mb"]
    print(f"rank 0 of 2 (FSDP) held {s2}; one process {s1}")
    assert s2["weights_full"] == pytest.approx(s1["weights"]) and s1["weights"] > 0
    assert s2["optimizer_full"] == pytest.approx(s1["optimizer"]) and s1["optimizer"] > 0
    assert s2["weights"] / s1["weights"] == pytest.approx(0.5, abs=0.01)
    assert s2["optimizer"] / s1["optimizer"] == pytest.approx(0.5, abs=0.01)
    w2, w1 = (load_file(Path(m["fit"]["notes"]["artifact_dir"]) / "model.safetensors")
              for m in (two, one))
    assert w2.keys() == w1.keys()
    gap = max(float((w2[k] - w1[k]).abs().max()) for k in w1)
    print(f"largest weight difference {gap:.2e}")
    assert gap <= 1e-5
    # rank 0 predicted alone, from the saved weights: the same answers as one process
    assert two["choice_accuracy"] == one["choice_accuracy"]
    answers = [[json.loads(r)["choice"] for r in (tmp_path / n / "run" / "predictions.jsonl")
                .read_text().splitlines()] for n in ("two", "one")]
    assert answers[0] == answers[1] and len(answers[0]) > 0


def test_rank_1_reads_the_cache_but_never_writes_it(tmp_path, monkeypatch):
    def build(tmp: Path) -> None:
        (tmp / "x.txt").write_text("built")

    whole = cached_dir(tmp_path / "whole", build)  # rank 0 (no launcher): committed
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cached_dir(tmp_path / "whole", build) == whole  # read
    private = cached_dir(tmp_path / "absent", build)  # built, but not into the cache
    assert (private / "x.txt").read_text() == "built"
    assert not private.is_relative_to(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole", "whole.lock"]
    rebuilt = cached_dir(tmp_path / "whole", build, rebuild=True)  # rank 0 rebuilds; 1 too
    assert rebuilt != whole and (whole / "x.txt").is_file()


def test_a_sweep_under_a_multi_process_launcher_is_refused(tmp_path):
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([str(BIN / "harness-run"), "-m", "model=tiny-random",
                          f"results_dir={tmp_path}"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode != 0 and "cannot run under a multi-process launcher" in res.stderr
    assert not any(tmp_path.iterdir())


PROBE = '''
import sys, time
from harness.ranks import agree, main_first, world
rank = world()[0]
with main_first():
    start = time.time()
    time.sleep(1.0)
# one write per line (print writes the text and its newline apart, and the two ranks
# share one pipe: their lines could interleave)
sys.stdout.write(f"rank={rank} agreed={agree(rank * 10 + 7)} start={start:.3f} "
                 f"end={time.time():.3f}\\n")
sys.stdout.flush()
'''


def test_ranks_share_rank_0s_decision_and_rank_0_goes_first(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    res = subprocess.run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes",
                          "2", "--num_machines", "1", "--mixed_precision", "no",
                          "--dynamo_backend", "no", "--main_process_port", "0", str(script)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    seen = {}
    for line in res.stdout.splitlines():
        if line.startswith("rank="):
            fields = dict(kv.split("=") for kv in line.split())
            seen[int(fields["rank"])] = fields
    assert sorted(seen) == [0, 1]
    assert seen[0]["agreed"] == seen[1]["agreed"] == "7"  # rank 0's value on both
    assert float(seen[1]["start"]) >= float(seen[0]["start"]) + 1.0  # after rank 0's block
