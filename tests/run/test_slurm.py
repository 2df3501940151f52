"""The Slurm path for real: a single-node cluster on this machine (bench/slurm_cluster.py:
munge, slurmctld, slurmd, and slurmdbd for sacct), tiny-model sweeps with launcher=slurm
as real batch jobs. The report equals the local sweep's item by item; a job that crashes,
one cancelled with scancel and one past its time limit are recorded as failed, the sweep
goes on, and re-invoking it redoes the cancelled run only. Needs root and apt-get (as here
and in CI); skipped, saying why, where they are missing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.slurm_cluster import SLURM_CPU, cluster, unavailable

BIN = Path(sys.executable).parent
TINY = ["model=tiny-random", "task.n_entities=12", "answer.generate=false", "progress=false",
        "+per_strategy.lora.train.max_steps=2", "seen_eval_limit=4"]

pytestmark = pytest.mark.skipif(bool(unavailable()), reason=str(unavailable()))

CRASH = '''
import os
import signal
import time


class Crash:
    """A user's strategy whose process dies in fit (exit), sleeps there (sleep: submitit's
    time-limit signal stops it), or hangs without servicing signals (hang: as a long call
    into native code does; Slurm kills it at the limit)."""
    trains, cites, retrieval_k = False, False, None

    def __init__(self, ctx, *, name, how):
        self.name, self.how = name, how

    def fit(self, task):
        if self.how == "exit":
            os._exit(3)  # the job's process dies: no Python error handler runs
        if self.how == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK,
                                   {signal.SIGUSR2, signal.SIGTERM, signal.SIGCONT})
        time.sleep(3600)

    def predict(self, examples):
        return []
'''


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    t0 = time.perf_counter()
    # 4 job slots on 2 cores: the time-limit test's jobs wait, asleep, for 2 minutes, and
    # the other two run meanwhile
    with cluster(root / "cluster", cpus=4) as c:
        c.up_s = time.perf_counter() - t0
        yield c


def _sweep(sweep_dir: Path, *args: str, cwd: Path | None = None, wait: bool = True):
    flags = [a for a in args if a.startswith("--")]  # Hydra's flags come first
    cmd = [str(BIN / "harness-run"), "-m", *flags, *TINY, *[a for a in args if a not in flags],
           f"hydra.sweep.dir={sweep_dir}", f"cache_dir={sweep_dir}/cache"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _metrics(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def _items(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return [(r["id"], r["choice"], r["output"], json.dumps(r["scores"], sort_keys=True))
            for r in rows]


def _report(sweep_dir: Path) -> list[dict]:
    res = subprocess.run([str(BIN / "harness-report"), str(sweep_dir)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    with (sweep_dir / "summary.csv").open() as f:
        return [{**row, "run": Path(row["run"]).name} for row in csv.DictReader(f)]


SCORES = ("run", "strategy", "seed", "status", "n_examples", "choice_accuracy", "recall_at_k",
          "split_hash", "train_tokens", "trainable_params")


def test_slurm_sweep_equals_the_local_sweep(slurm, tmp_path):
    runs = ["strategy=prompt,rag,lora"]
    _sweep(tmp_path / "local", *runs)
    t0 = time.perf_counter()
    _sweep(tmp_path / "slurm", *runs, "launcher=slurm", *SLURM_CPU)
    slurm_s = time.perf_counter() - t0
    local, remote = _metrics(tmp_path / "local"), _metrics(tmp_path / "slurm")
    assert sorted(local) == sorted(remote) == ["0_prompt_seed0", "1_rag_seed0", "2_lora_seed0"]
    jobs = []
    for name, m in remote.items():
        assert m["status"] == local[name]["status"] == "complete"
        assert m["slurm_job"] and local[name]["slurm_job"] is None  # really ran in Slurm
        jobs.append(m["slurm_job"])
        assert _items(tmp_path / "slurm" / name) == _items(tmp_path / "local" / name)
    # the report's numbers, run by run (timings aside), are the same
    pick = [{k: row.get(k) for k in SCORES if k in row} for row in _report(tmp_path / "local")]
    assert pick == [{k: row.get(k) for k in SCORES if k in row}
                    for row in _report(tmp_path / "slurm")]
    acct = slurm.sacct(*jobs)
    assert acct.count("COMPLETED") == 3, acct
    print(f"\ncluster up {slurm.up_s:.1f} s; Slurm sweep of 3 runs {slurm_s:.1f} s\n{acct}")


def test_crashed_and_timed_out_jobs_are_recorded_and_the_sweep_goes_on(slurm, tmp_path):
    (tmp_path / "crashy.py").write_text(CRASH)
    conf = tmp_path / "myconf" / "strategy"
    conf.mkdir(parents=True)
    for how in ("exit", "sleep", "hang"):
        (conf / f"crash_{how}.yaml").write_text(
            f"_target_: crashy.Crash\nname: crash_{how}\nhow: {how}\n")
    sweep = tmp_path / "sweep"
    t0 = time.perf_counter()
    _sweep(sweep, f"--config-dir={tmp_path / 'myconf'}",
           "strategy=crash_hang,crash_sleep,crash_exit,prompt", "launcher=slurm", *SLURM_CPU,
           "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30", cwd=tmp_path)
    took = time.perf_counter() - t0
    m = _metrics(sweep)
    assert m["3_prompt_seed0"]["status"] == "complete"  # the sweep went on
    hung, slow, crashed = (m[f"{i}_crash_{how}_seed0"] for i, how in
                           ((0, "hang"), (1, "sleep"), (2, "exit")))
    assert crashed["status"] == slow["status"] == hung["status"] == "failed"
    # the process died: the launcher marked the run with the job's state
    assert crashed["slurm_state"].startswith("FAILED"), crashed
    # submitit's signal, signal_delay_s before the limit (Slurm sends it up to 60 s early:
    # 30-90 s into this job), stopped the run: it says why
    assert "time limit" in slow["error"] and "timeout_min" in slow["error"], slow["error"]
    # killed by Slurm at the limit: marked by the launcher
    assert hung["slurm_state"] == "TIMEOUT" and "ended TIMEOUT" in hung["error"]
    assert took > 120  # the time limit (2 min) had to pass
    acct = slurm.sacct(crashed["slurm_job"], slow["slurm_job"], hung["slurm_job"])
    assert "FAILED" in acct and "TIMEOUT" in acct, acct
    rows = {r["run"]: r for r in _report(sweep)}
    assert [rows[f"{i}_crash_{h}_seed0"]["status"] for i, h in
            ((0, "hang"), (1, "sleep"), (2, "exit"))] == ["failed"] * 3
    report = (sweep / "report.md").read_text()
    assert "Slurm job" in report and "TIMEOUT" in report
    print(f"\ncrash + timeout sweep {took:.1f} s\n{acct}")


def test_a_cancelled_job_is_redone_alone_when_the_sweep_is_reinvoked(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["strategy=prompt,lora", "++per_strategy.lora.train.max_steps=60",
            "launcher=slurm", *SLURM_CPU]
    proc = _sweep(sweep, *args, wait=False)
    lora = sweep / "1_lora_seed0" / "metrics.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        m = json.loads(lora.read_text() or "{}") if lora.is_file() else {}
        if m.get("status") == "running":
            break
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    else:
        pytest.fail("the lora job never started its run")
    job = m["slurm_job"]
    subprocess.run(["scancel", job], check=True, env=os.environ)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    first = _metrics(sweep)
    assert first["0_prompt_seed0"]["status"] == "complete"
    assert first["1_lora_seed0"]["status"] == "failed"
    assert first["1_lora_seed0"]["slurm_state"].startswith("CANCELLED")
    assert f"Slurm job {job}" in out and "CANCELLED" in out
    _sweep(sweep, *args)  # re-invoked: the cancelled run only is redone
    again = _metrics(sweep)
    assert again["0_prompt_seed0"] == first["0_prompt_seed0"]  # not rerun
    assert again["1_lora_seed0"]["status"] == "complete"
    assert again["1_lora_seed0"]["slurm_job"] != job
    acct = slurm.sacct(job, again["1_lora_seed0"]["slurm_job"])
    assert "CANCELLED" in acct and "COMPLETED" in acct, acct
    print(f"\n{acct}")


def test_a_slurm_job_of_two_tasks_trains_data_parallel(slurm, tmp_path):
    """tasks_per_node=2: one job, two ranks (harness.ranks.from_slurm), one run directory;
    full tuning sharded over them (FSDP2 on gloo: each task holds half the AdamW states)."""
    sweep = tmp_path / "sweep"
    _sweep(sweep, "strategy=full", "strategy.train.shard=fsdp", "strategy.train.max_steps=2",
           "strategy.measure_forgetting=false", "launcher=slurm", *SLURM_CPU,
           "hydra.launcher.tasks_per_node=2", "strategy.train.batch_size=4")
    m = _metrics(sweep)["0_full_seed0"]
    notes = m["fit"]["notes"]
    assert m["status"] == "complete" and notes["processes"] == 2
    assert notes["global_batch"] == 4 * 1 * 2
    states = notes["states_mb"]
    assert notes["sharded"] and states["optimizer"] == pytest.approx(states["optimizer_full"] / 2, rel=0.01)
    assert m["modelled"]["off"].startswith("trained by 2 data-parallel processes")
    acct = slurm.sacct(m["slurm_job"])
    assert "COMPLETED" in acct and " 2 " in acct, acct  # two CPUs: one per task
    print(f"\n{acct}")


def test_a_fair_search_runs_its_trials_as_slurm_jobs(slurm, tmp_path):
    """experiment=fair through launcher=slurm: each batch of trials is a job array, then the
    test runs; every run in a real job, trials on the validation split only."""
    sweep = tmp_path / "sweep"
    _sweep(sweep, "experiment=fair", "strategy=prompt,rag", "search.trials=2", "launcher=slurm",
           *SLURM_CPU)
    m = _metrics(sweep)
    assert sorted(m) == ["prompt_final", "prompt_trial00", "prompt_trial01", "rag_final",
                         "rag_trial00", "rag_trial01"]
    assert all(x["status"] == "complete" and x["slurm_job"] for x in m.values())
    assert {x["split"] for n, x in m.items() if "_trial" in n} == {"val"}
    assert {x["split"] for n, x in m.items() if n.endswith("_final")} == {"test"}
    acct = slurm.sacct(*(x["slurm_job"] for x in m.values()))
    assert acct.count("COMPLETED") == 6, acct
