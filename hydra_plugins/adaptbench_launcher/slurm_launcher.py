"""`launcher=slurm`: hydra-submitit-launcher's Slurm launcher, waiting for every job.

The stock launcher reads the jobs' results in order and raises at the first job that did
not finish, so one cancelled or timed-out job ends the sweep's wait (the jobs left in the
queue still run, unobserved). This one waits for all of them, and for each job that ended
without finishing its run (cancelled, past its time limit, out of memory, crashed) marks
that run failed with the job's Slurm state (harness.run.slurm) and logs it; the sweep's
other runs are unaffected, and re-invoking the sweep into the same directory redoes the
failed ones only.

While it waits it asks Slurm (one `sacct` for all the sweep's jobs) at least every
STATE_POLL_S seconds; submitit alone backs off to once per 10 minutes, so a job that died
without writing its result (killed at its time limit, out of memory) could hold the sweep
that long. A job whose state is final gets RESULT_GRACE_S for its result file to appear on
a slow shared file system, counted once for all of them rather than job after job."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

STATE_POLL_S = 15.0
RESULT_GRACE_S = 15.0


class SlurmLauncher(SubmititSlurmLauncher):
    def _executor(self) -> Any:
        import submitit

        params = dict(self.params)
        folder = params.pop("submitit_folder")
        init = {f"slurm_{k}": params.pop(k) for k in ("max_num_timeout",) if k in params}
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # names without a prefix
        executor.update_parameters(**{k if k in shared else f"slurm_{k}": v
                                      for k, v in params.items()})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and job_overrides
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Slurm sweep output dir: %s", sweep_dir)
        calls = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            calls.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                          Singleton.get_state()))
        jobs = self._executor().map_array(self, *zip(*calls))
        log.info("submitted Slurm jobs %s", ", ".join(j.job_id for j in jobs))
        _wait_all(jobs)
        return [self._outcome(job, list(o), sweep_dir) for job, o in zip(jobs, job_overrides)]

    @staticmethod
    def _outcome(job: Any, overrides: list[str], sweep_dir: Path) -> JobReturn:
        from submitit.core.utils import UncompletedJobError

        try:
            return job.results()[0]
        except UncompletedJobError as e:  # FailedJobError too
            from harness.run.slurm import mark_unfinished

            state = str(job.state)
            stderr = job.stderr() or str(e)
            marked = mark_unfinished(sweep_dir, str(job.job_id), state, stderr)
            log.error("Slurm job %s (%s) ended %s: %s", job.job_id, " ".join(overrides), state,
                      f"run {marked[0].name} marked failed" if marked else
                      "it never started its run")
            return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def _wait_all(jobs: Sequence[Any], poll_s: float = STATE_POLL_S,
              grace_s: float = RESULT_GRACE_S) -> None:
    """Until every job has its result or a final Slurm state, then until the finished ones
    without a result have had `grace_s` to produce it; afterwards `results()` does not
    wait again."""
    watcher = jobs[0].watcher  # shared by all of submitit's Slurm jobs: one sacct for all
    last = time.monotonic()
    while not all(job.done() for job in jobs):
        if time.monotonic() - last >= poll_s:
            watcher.update()
            last = time.monotonic()
        time.sleep(1)
    deadline = time.monotonic() + grace_s
    while (time.monotonic() < deadline
           and not all(job.paths.result_pickle.exists() for job in jobs)):
        time.sleep(1)
    for job in jobs:
        job._results_timeout_s = 0  # the grace above was their wait
