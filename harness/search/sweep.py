"""The search itself: each strategy's trials scored on the validation split only, launched in
batches through the sweep's launcher (local, joblib, Slurm), then each strategy's best trial
run once on the test split, reusing what its trial fitted.

Every trial is a run directory of the sweep folder, `<strategy>_trialNN`, and the test run
`<strategy>_final`. What a trial scored is read from its metrics.json, so the search does
not depend on how the launcher returns results. A trial that failed is not told to Optuna:
a search invoked again into the same folder reruns it, as it reruns a trial that was running
when the search was killed; finished trials are never run twice.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run_files import read_json, write_json
from harness.search.outcome import Outcome
from harness.search.plan import SearchPlan, StrategyPlan
from harness.search.select import Candidate, choose
from harness.search.space import from_stored, overrides, suggest
from harness.search.study import SearchSettings, open_study, tell

log = logging.getLogger("harness.search")

TRIAL, FINAL = "trial", "final"

Launch = Callable[[list[list[str]]], None]


def show(values: dict[str, Any]) -> str:
    """Sampled values for a log line (floats to 4 significant digits)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={json.dumps(v)}"
                     for k, v in values.items())


def trial_dir(strategy: str, number: int) -> str:
    return f"{strategy}_trial{number:02d}"


def final_dir(strategy: str, seed: int | None = None) -> str:
    """The test run of a strategy's chosen trial; with `seed`, its re-run under that training
    seed (search.final_seeds)."""
    return f"{strategy}_final" + (f"_seed{seed}" if seed is not None else "")


@dataclass(frozen=True)
class Job:
    strategy: str
    number: int
    values: dict[str, Any]
    overrides: list[str]
    run_dir: Path


class Search:
    def __init__(self, sweep_dir: Path, settings: SearchSettings, plan: SearchPlan,
                 launch: Launch, progress_file: str = "sweep.json") -> None:
        self.sweep_dir, self.settings, self.plan, self.launch = sweep_dir, settings, plan, launch
        self.progress_file = progress_file  # where the sweep's progress line reads its total
        self.studies: dict[str, Any] = {}

    def run(self) -> dict[str, Path | None]:
        """Search every strategy, then test each one's best trial; returns strategy -> its
        test run directory (None: no trial completed)."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.studies = {s.name: open_study(self.sweep_dir, s.name, self.settings)
                        for s in self.plan.strategies}
        total = len(self.plan.strategies) * (int(self.settings.trials) + 1)
        write_json(self.sweep_dir / self.progress_file, {"total": total, "started_at": time.time()})
        log.info("search: %s, %d trial(s) each on the validation split (sampler %s, pruner %s%s), "
                 "then each one's best on the test split -> %s",
                 ", ".join(s.name for s in self.plan.strategies), self.settings.trials,
                 self.settings.sampler, self.settings.pruner,
                 f", budget ${self.settings.budget_usd:g} each" if self.settings.budget_usd else "",
                 self.sweep_dir)
        self._search()
        return self._finals()

    # -- trials
    def _search(self) -> None:
        batch = [job for s in self.plan.strategies for job in self._unfinished(s)]
        if batch:
            log.info("search: resuming %d trial(s) a previous search left unfinished", len(batch))
        while True:
            for s in self.plan.strategies:
                batch += self._ask(s)
            if not batch:
                return
            self._launch(batch)
            self._tell(batch)
            batch = []

    def _unfinished(self, s: StrategyPlan) -> list[Job]:
        """Trials a previous search left running (killed) or failed: rerun with their values."""
        from optuna.trial import TrialState

        study = self.studies[s.name]
        return [self._job(s, t.number, from_stored(t.params, s.params), TRIAL)
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]

    def _ask(self, s: StrategyPlan) -> list[Job]:
        """New trials for `s`: up to one batch, while it has trials and budget left."""
        study, jobs = self.studies[s.name], []
        started = len(study.get_trials(deepcopy=False))
        room = int(self.settings.trials) - started
        if room <= 0 or self._over_budget(s):
            return []
        for _ in range(min(room, self.settings.batch())):
            trial = study.ask()
            jobs.append(self._job(s, trial.number, suggest(trial, s.params), TRIAL))
        return jobs

    def _over_budget(self, s: StrategyPlan) -> bool:
        if self.settings.budget_usd is None:
            return False
        spent = sum(c for c in (self._outcome(s.name, t.number).cost_usd
                                for t in self.studies[s.name].get_trials(deepcopy=False))
                    if not math.isnan(c))
        if spent >= float(self.settings.budget_usd):
            log.info("search: %s has spent $%.4f of its $%g budget: no more trials", s.name,
                     spent, self.settings.budget_usd)
            return True
        return False

    def _job(self, s: StrategyPlan, number: int, values: dict[str, Any], phase: str) -> Job:
        name = trial_dir(s.name, number) if phase == TRIAL else final_dir(s.name)
        split = ["eval_split=val", "seen_eval_limit=0"] if phase == TRIAL else ["eval_split=test"]
        own = overrides(s.name, s.params, values) + split + [
            f"search.phase={phase}", f"search.study={s.name}", f"search.trial={number}",
            f"hydra.sweep.subdir={name}"]
        mine = {o.split("=", 1)[0].lstrip("+") for o in own}
        shared = [o for o in self.plan.shared if o.split("=", 1)[0].lstrip("+") not in mine]
        return Job(s.name, number, values, shared + s.base + own, self.sweep_dir / name)

    def _launch(self, batch: list[Job]) -> None:
        for job in batch:
            split = "test" if job.run_dir.name == final_dir(job.strategy) else "validation"
            log.info("search: %s (%s) %s", job.run_dir.name, split, show(job.values))
        self.launch([job.overrides for job in batch])

    def _outcome(self, strategy: str, number: int) -> Outcome:
        return Outcome.read(self.sweep_dir / trial_dir(strategy, number))

    def _tell(self, batch: list[Job]) -> None:
        for job in batch:
            if not tell(self.studies[job.strategy], job.number, Outcome.read(job.run_dir)):
                # failed: left running in the study, so the next invocation reruns it
                log.error("search: trial %s did not complete (see its metrics.json); it counts "
                          "as tried, and invoking the search again reruns it", job.run_dir.name)

    # -- the test runs
    def best(self, s: StrategyPlan) -> tuple[int, dict[str, Any]] | None:
        """The trial search.select picks among those that finished their training (a
        pruned trial's model is not the config as given): harness.search.select."""
        params, candidates = {}, []
        for t in self.studies[s.name].get_trials(deepcopy=False):
            out = self._outcome(s.name, t.number)
            if out.complete and not out.pruned and out.value is not None:
                candidates.append(Candidate(t.number, out.value, out.cost_usd, out.se))
                params[t.number] = t.params
        chosen = choose(candidates, self.settings.select)
        if chosen is None:
            return None
        if chosen.number != chosen.best:
            log.info("search: %s: trial %d has the top validation score, but trials %s are "
                     "within one standard error (%.3f) of it: the cheapest, trial %d, is chosen "
                     "(search.select=one_se)", s.name, chosen.best,
                     ", ".join(map(str, sorted(chosen.within_noise))), chosen.se, chosen.number)
        return chosen.number, from_stored(params[chosen.number], s.params)

    def _finals(self) -> dict[str, Path | None]:
        jobs, done = [], {}
        for s in self.plan.strategies:
            chosen = self.best(s)
            if chosen is None:
                log.error("search: no trial of %s completed, so it has no test run", s.name)
                done[s.name] = None
                continue
            number, values = chosen
            value = self._outcome(s.name, number).value
            log.info("search: %s chose trial %d (validation %.3f): %s", s.name, number, value,
                     show(values))
            jobs.append(self._job(s, number, values, FINAL))
            done[s.name] = jobs[-1].run_dir
        if jobs:
            self._launch(jobs)
        self._other_seeds(jobs)
        return done

    def _other_seeds(self, finals: list[Job]) -> None:
        """search.final_seeds: each chosen config of a strategy that trains, tested again
        under training seeds seed+1, seed+2, ... (its trial kept the search's seed, and its
        artifact). Strategies that do not train are deterministic: not multiplied."""
        n = int(self.settings.final_seeds)
        jobs = []
        for job in finals:
            if n <= 1 or not Outcome.read(job.run_dir).trains:
                continue
            base = int(read_json(job.run_dir / "metrics.json").get("seed") or 0)
            for k in range(1, n):
                name = final_dir(job.strategy, base + k)
                own = [o for o in job.overrides if not o.startswith(("hydra.sweep.subdir=", "seed="))]
                jobs.append(Job(job.strategy, job.number, job.values,
                                own + [f"seed={base + k}", f"hydra.sweep.subdir={name}"],
                                self.sweep_dir / name))
        if jobs:
            log.info("search: %d re-run(s) of the chosen configs under other training seeds "
                     "(search.final_seeds=%d)", len(jobs), n)
            self._launch(jobs)
