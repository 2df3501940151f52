"""What a search will run, checked before any trial: the strategies it searches, each one's
space resolved against its config, the overrides every job shares, and a task with enough
validation items. Every problem is one line naming the key, the file or the split."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError
from harness.search.space import Param, parse_space, resolve

log = logging.getLogger("harness.search")

MIN_VAL_ITEMS = 30  # fewer validation items: a warning that says what they can resolve


@dataclass(frozen=True)
class StrategyPlan:
    name: str
    params: list[Param]
    base: list[str]  # overrides that compose this strategy's jobs
    val_items: int


@dataclass(frozen=True)
class SearchPlan:
    strategies: list[StrategyPlan]
    shared: list[str]  # the command line's plain overrides, given to every job


def split_arguments(parsed: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(the strategies swept, the other overrides as text). The search sweeps strategies
    only: another swept key must go into the search space."""
    strategies, shared = ["prompt"], []
    by_key: dict[str, Any] = {}
    for o in parsed:  # a later override of a key replaces an earlier one (params, then CLI)
        by_key[o.get_key_element()] = o
    for key, o in by_key.items():
        if key == "strategy":
            strategies = list(o.sweep_string_iterator()) if o.is_sweep_override() \
                else [o.get_value_element_as_str()]
        elif o.is_sweep_override():
            raise ConfigError(f"the search sweeps strategies only, not '{key}': put {key} in "
                              f"search.space.<strategy>.{key.removeprefix('strategy.')} to search "
                              "it, or run one search per value")
        else:
            shared.append(f"{key}={o.get_value_element_as_str()}")
    return strategies, shared


def plan_search(strategies: list[str], shared: list[str],
                compose: Callable[[list[str]], DictConfig],
                group_options: Callable[[str], list[str]],
                val_count: Callable[[DictConfig], tuple[str, int]]) -> SearchPlan:
    """Compose each strategy's config with its space and check every key (compose: overrides
    -> the job's effective config, per_strategy merged; val_count: config -> (task name,
    validation items))."""
    plans, counted = [], {}
    for name in dict.fromkeys(strategies):
        base = [f"strategy={name}"]
        cfg = compose(shared + base)
        if OmegaConf.select(cfg, f"search.space.{name}") is None:
            if name not in group_options("search"):
                raise ConfigError(f"no search space for strategy '{name}': add "
                                  f"conf/search/{name}.yaml (in your --config-dir) or give "
                                  f"+search.space.{name}.<key>=[a,b]")
            base.append(f"+search@search.space.{name}={name}")
            cfg = compose(shared + base)
        where = f"search.space.{name}"
        params = parse_space(OmegaConf.to_container(cfg.search.space[name], resolve=True), where)
        params = resolve(params, OmegaConf.to_container(cfg.strategy, resolve=True),
                         OmegaConf.to_container(cfg, resolve=False), group_options, where=where,
                         files=f"looked in strategy/{name}.yaml and the run's config; the space "
                               f"comes from search/{name}.yaml and the command line")
        task_key = OmegaConf.to_yaml(cfg.task, resolve=True)
        if task_key not in counted:
            counted[task_key] = val_count(cfg)
        task, n_val = counted[task_key]
        _check_val(task, n_val, list(cfg.task.get("split_ratios") or []))
        plans.append(StrategyPlan(name, params, base, n_val))
    return SearchPlan(plans, shared)


def _check_val(task: str, n_val: int, ratios: list[float]) -> None:
    if n_val == 0:
        raise ConfigError(f"task '{task}' has no validation items, and the search scores its "
                          f"trials on them only: give it a validation split, e.g. "
                          f"task.split_ratios=[0.7,0.15,0.15] (train, val, test; now "
                          f"{ratios or 'its examples set the split'})")
    if n_val < MIN_VAL_ITEMS:
        half = 1.96 * math.sqrt(0.25 / n_val)
        log.warning("task '%s' has only %d validation items: one trial's accuracy is known to "
                    "about ±%.0f points (95%%), so trials closer than that cannot be told apart; "
                    "%d or more items are better (task.split_ratios)", task, n_val, 100 * half,
                    MIN_VAL_ITEMS)
