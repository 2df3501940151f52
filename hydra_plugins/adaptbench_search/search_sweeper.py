"""`hydra/sweeper=adaptbench_search` (experiment=fair): a fair contest between strategies.

Each strategy named by `strategy=a,b,...` gets the same budget of trials (search.trials, and
search.budget_usd of modelled cost), drawn by Optuna from its space (search.space.<strategy>)
and scored on the validation split only; then its best trial runs once on the test split.
The jobs go through the sweep's launcher, so launcher=joblib and launcher=slurm run trials
side by side. The work is in harness.search; this class is what Hydra instantiates."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class SearchSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None) -> None:
        super().__init__()
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from harness.errors import UserError, full_errors

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        try:
            return self._search([f"{k}={v}" for k, v in self.params.items()] + list(arguments),
                                sweep_dir)
        except UserError as e:  # one line, before any trial ran
            if full_errors():
                raise
            raise SystemExit(f"harness-run: error: {e}") from None

    def _search(self, arguments: list[str], sweep_dir: Path) -> Any:
        from harness.run.compose import effective_config
        from harness.run.progress import SWEEP_FILE
        from harness.search.plan import plan_search, split_arguments
        from harness.search.study import SearchSettings
        from harness.search.sweep import Search

        loader = self.hydra_context.config_loader
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
        settings = SearchSettings.from_config(OmegaConf.to_container(self.config.search,
                                                                     resolve=True))
        strategies, shared = split_arguments(parsed)

        def compose(overrides: list[str]) -> DictConfig:
            return effective_config(loader.load_sweep_config(self.config, overrides))

        def group_options(key: str) -> list[str]:
            try:
                return list(loader.get_group_options(key))
            except Exception:  # not a config group
                return []

        plan = plan_search(strategies, shared, compose, group_options, _validation_items)
        return Search(sweep_dir, settings, plan, self._launch, SWEEP_FILE).run()

    def _launch(self, batch: list[list[str]]) -> None:
        self.validate_batch_is_legal(batch)
        returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(batch)
        for r in returns:  # a job the launcher could not even start is a bug to see now
            _ = r.return_value


def _validation_items(cfg: DictConfig) -> tuple[str, int]:
    """(the task's name, its validation items), from the task a job would build."""
    from hydra.utils import to_absolute_path

    from harness.data import build_task

    task = build_task(OmegaConf.to_container(cfg.task, resolve=True), resolve_path=to_absolute_path)
    return task.name, len(task.split("val"))
