"""Slurm jobs and run directories: which job a run ran in, and what the submitting process
records when a job ends without finishing its run (cancelled, past its time limit, killed
for memory, crashed): the run's metrics.json says failed, with the job's Slurm state and
the tail of its stderr, so the report lists it and re-invoking the sweep redoes it."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from harness.run_files import STATUS_FAILED, STATUS_RUNNING, read_json, write_json


def slurm_job() -> str | None:
    """This process's Slurm job as submitit names it: <array job>_<task> for a job array,
    else the job id; None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def mark_unfinished(sweep_dir: Path, job_id: str, state: str, stderr_tail: str = "") -> list[Path]:
    """Mark failed the runs of `sweep_dir` that Slurm job `job_id` started and left
    running; returns their directories (none: the job never started a run)."""
    marked = []
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json")):
        try:
            m = read_json(metrics_path)
        except (OSError, ValueError):
            continue
        if m.get("slurm_job") != job_id or m.get("status") != STATUS_RUNNING:
            continue
        write_json(metrics_path, {
            **m, "status": STATUS_FAILED,
            "error": f"Slurm job {job_id} ended {state} before the run finished",
            "slurm_state": state, "traceback": stderr_tail[-4000:] or None,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        marked.append(metrics_path.parent)
    return marked


def explain(error: BaseException) -> str | None:
    """A clearer message for errors that come from Slurm rather than the run: submitit's
    handler of the time-limit signal raises inside the run when the job may not requeue."""
    if type(error).__name__ == "UncompletedJobError" and "timed-out" in str(error):
        return (f"Slurm time limit: submitit stopped the run signal_delay_s before the job's "
                f"limit ({error}); raise hydra.launcher.timeout_min, or allow requeues with "
                f"hydra.launcher.max_num_timeout")
    return None
