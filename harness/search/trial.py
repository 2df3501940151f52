"""What a run does when the search started it: its line to the study (the reporter), its
pruner, and what it records of the search. The runner calls these and knows nothing else of
a search."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.ranks import world
from harness.search.study import SearchSettings, TrialReporter
from harness.types import FitReport, Pruning

log = logging.getLogger(__name__)


def trial_reporter(cfg: DictConfig, run_dir: Path) -> TrialReporter | None:
    """A search trial's line to its study (harness.search.study), or None outside a trial."""
    search = cfg.get("search") or {}
    if search.get("phase") != "trial":
        return None
    settings = SearchSettings.from_config(OmegaConf.to_container(search, resolve=True))
    return TrialReporter(run_dir.parent, str(search.study), int(search.trial), settings)


def trial_pruning(reporter: TrialReporter | None) -> Pruning | None:
    """The trial's pruner (search.pruner), unless several processes train it (they would
    have to stop together)."""
    if reporter is None or reporter.pruning is None:
        return None
    if world()[1] > 1:
        log.warning("search.pruner is off for a trial trained by several processes")
        return None
    return reporter.pruning


def search_fields(cfg: DictConfig, fit: FitReport) -> dict[str, Any] | None:
    """What a run of a search records (metrics.json -> search): its phase (trial: scored on
    the validation split; final: the chosen trial on the test split), study and trial
    number, and whether the trial was pruned. None outside a search."""
    search = cfg.get("search") or {}
    if not search.get("phase"):
        return None
    pruned = (fit.notes or {}).get("pruned_at_epoch")
    return {"phase": str(search.phase), "study": search.get("study"), "trial": search.get("trial"),
            "pruned": pruned is not None, "pruned_at_epoch": pruned}
