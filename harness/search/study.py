"""The Optuna side of a search: one study per strategy in a journal file inside the sweep
folder (so an interrupted search resumes where it stopped), its sampler and pruner, and the
reporter a trial's training loop prunes through.

Optuna drives the search through its ask-and-tell interface rather than through
hydra-optuna-sweeper: that plugin (1.3.0) pins optuna < 3, and it treats each trial as one
opaque objective value, while a fair contest also needs each trial's modelled cost, a budget
shared across strategies, and a test run of each strategy's best trial after the search.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.search.select import check_rule

log = logging.getLogger(__name__)

SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "halving")
STUDY_FILE = "search.journal"  # in the sweep folder: Optuna's journal of every study
EPOCH_STEPS = 100  # a pruning step is a hundredth of an epoch (validations fall on epochs)


@dataclass(frozen=True)
class SearchSettings:
    """search.* of conf/config.yaml (docs/tuning-fairly.md)."""
    trials: int = 8
    budget_usd: float | None = None
    sampler: str = "random"
    seed: int = 0
    pruner: str = "none"
    pruner_startup_trials: int = 2
    pruner_warmup_epochs: float = 1.0
    batch_size: int | None = None
    select: str = "one_se"  # best | one_se (harness.search.select)
    final_seeds: int = 1  # training seeds each chosen config of a tuned strategy is tested with

    @classmethod
    def from_config(cls, search: Any) -> SearchSettings:
        keys = cls.__dataclass_fields__
        return cls(**{k: search[k] for k in keys if k in search and search[k] is not None})

    def __post_init__(self) -> None:
        if int(self.trials) < 1:
            raise ConfigError(f"search.trials must be >= 1 (trials per strategy), got {self.trials}")
        if self.budget_usd is not None and not float(self.budget_usd) > 0:
            raise ConfigError(f"search.budget_usd must be > 0 (or null: trials alone), "
                              f"got {self.budget_usd}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown search.sampler '{self.sampler}'; choose one of: "
                              f"{', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown search.pruner '{self.pruner}'; choose one of: "
                              f"{', '.join(PRUNERS)}")
        check_rule(self.select)
        if int(self.final_seeds) < 1:
            raise ConfigError(f"search.final_seeds must be >= 1, got {self.final_seeds}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ConfigError(f"search.batch_size must be >= 1 or null, got {self.batch_size}")

    def batch(self) -> int:
        """Trials of one strategy launched together. Random draws are independent, so all
        at once (a cluster runs them side by side) unless a cost budget must be watched
        between trials; TPE learns from each result, so one at a time."""
        if self.batch_size:
            return int(self.batch_size)
        return int(self.trials) if self.sampler == "random" and self.budget_usd is None else 1


def storage(sweep_dir: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(Path(sweep_dir) / STUDY_FILE)
    # an open(O_EXCL) lock works on network file systems too (a cluster's shared folder)
    return optuna.storages.JournalStorage(JournalFileBackend(path, JournalFileOpenLock(path)))


def sampler(settings: SearchSettings, already: int = 0) -> Any:
    """The sampler, seeded by search.seed and the trials the study already holds (a resumed
    search draws new values, not the ones its first part drew)."""
    import optuna

    seed = int(settings.seed) + already
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, settings.trials))
    return optuna.samplers.RandomSampler(seed=seed)


def pruner(settings: SearchSettings) -> Any:
    import optuna

    warmup = int(settings.pruner_warmup_epochs * EPOCH_STEPS)
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                           n_warmup_steps=warmup)
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(warmup, EPOCH_STEPS),
                                                      reduction_factor=2)
    return optuna.pruners.NopPruner()


def open_study(sweep_dir: Path, name: str, settings: SearchSettings, store: Any = None) -> Any:
    """The study of strategy `name` in the sweep folder, created or resumed. It maximizes the
    validation primary metric; a pruner compares trials by their negated validation loss."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = store or storage(sweep_dir)
    try:
        existing = store.get_study_id_from_name(name)
        already = len(store.get_all_trials(existing, deepcopy=False))
    except KeyError:
        already = 0
    return optuna.create_study(storage=store, study_name=name, direction="maximize",
                               sampler=sampler(settings, already), pruner=pruner(settings),
                               load_if_exists=True)


class TrialReporter:
    """A search trial's line to its study, from the process that runs it: the training loop
    reports each validation's negated loss (`report` says whether the pruner stops the
    trial there), and the run tells its score when it ends (`finish`), so the pruner of a
    trial launched beside others already sees the ones that finished."""

    def __init__(self, sweep_dir: Path, study_name: str, number: int,
                 settings: SearchSettings) -> None:
        import optuna

        store = storage(sweep_dir)
        study = open_study(sweep_dir, study_name, settings, store)
        trial_id = store.get_trial_id_from_study_id_trial_number(
            store.get_study_id_from_name(study_name), number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.study, self.number, self.settings = study, number, settings
        self.pruned_at: float | None = None  # the epoch it was pruned at

    @property
    def pruning(self):
        """The callback a training loop prunes through; None without a pruner."""
        return self.report if self.settings.pruner != "none" else None

    def finish(self, metrics: dict[str, Any]) -> None:
        """Tell the study what the trial's run recorded, as soon as it ends."""
        from harness.search.outcome import Outcome

        tell(self.study, self.number, Outcome.from_metrics(metrics))

    def report(self, epoch: float, val_loss: float, last: bool = False) -> bool:
        step = int(round(epoch * EPOCH_STEPS))
        self.trial.report(-float(val_loss), step)
        if not last and self.trial.should_prune():
            self.pruned_at = float(epoch)
            log.info("trial %d pruned at epoch %.2f (validation loss %.4f)", self.number, epoch,
                     val_loss)
            return True
        return False


def tell(study: Any, number: int, out: Any) -> bool:
    """Tell an Optuna study what a trial's run says (harness.search.outcome.Outcome): pruned,
    or its value. A run that did not complete tells nothing, so the search reruns it when
    invoked again; returns whether it told. The one place a result reaches a study: the
    trial's own run calls it when it ends, the sweeper after each batch (a second tell of a
    finished trial is skipped)."""
    from optuna.trial import TrialState

    if out.complete and out.pruned:
        study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
    elif out.complete and out.value is not None:
        study.tell(number, out.value, skip_if_finished=True)
    else:
        return False
    return True
