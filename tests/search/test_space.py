"""Search spaces: parsed and checked before any trial, sampled by Optuna, turned into Hydra
overrides that compose."""

from __future__ import annotations

import math

import optuna
import pytest

from harness.errors import ConfigError
from harness.search.space import (
    from_stored,
    hydra_value,
    leaves,
    overrides,
    parse_space,
    resolve,
    suggest,
)
from harness.search.study import SearchSettings
from tests.conftest import compose_cfg

SPACE = {"k": [1, 3], "train": {"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                                "epochs": {"low": 1, "high": 4}},
         "retriever": {"choices": ["dense", "bm25"], "rerank": [None, "lm"]},
         "adapter": {"target_modules": ["all-linear", ["q_proj", "v_proj"]]}}


def test_leaves_walk_nested_keys_and_a_group_with_keys_inside():
    assert sorted(leaves(SPACE)) == ["adapter.target_modules", "k", "retriever",
                                     "retriever.rerank", "train.epochs", "train.lr"]
    params = {p.key: p for p in parse_space(SPACE, "search.space.x")}
    assert params["train.lr"].kind == "float" and params["train.lr"].log
    assert params["train.epochs"].kind == "int"
    assert params["retriever"].choices == ("dense", "bm25")


@pytest.mark.parametrize("space, says", [
    ({}, "is empty"),
    ({"k": []}, "empty list of choices"),
    ({"k": 3}, "give a list of choices"),
    ({"lr": {"low": 1e-2, "high": 1e-4}}, "need low < high"),
    ({"lr": {"low": 0, "high": 1, "log": True}}, "low > 0 on a log scale"),
    ({"lr": {"low": 0.1, "high": 1, "scale": "log"}}, "unknown range setting(s) scale"),
])
def test_a_malformed_space_fails_naming_the_key(space, says):
    with pytest.raises(ConfigError, match="search.space.rag") as e:
        parse_space(space, "search.space.rag")
    assert says in str(e.value)


def test_keys_resolve_to_the_strategy_the_run_or_a_config_group():
    cfg = compose_cfg(["strategy=rag"])
    groups = {"retriever": ["bm25", "dense", "hybrid"]}
    params = resolve(parse_space({"k": [1, 3], "chunker": {"size": [60, 120]},
                                  "retriever": {"choices": ["dense", "bm25"],
                                                "rerank": [None, "lm"]}}, "s"),
                     dict(cfg.strategy), cfg, lambda k: groups.get(k, []), where="s", files="f")
    assert {p.key: p.target for p in params} == {"k": "strategy", "chunker.size": "run",
                                                 "retriever": "group", "retriever.rerank": "run"}
    with pytest.raises(ConfigError, match="s.no_such_knob: the strategy has no key 'no_such_knob'"):
        resolve(parse_space({"no_such_knob": [1, 2]}, "s"), dict(cfg.strategy), cfg,
                lambda k: [], where="s", files="f")
    with pytest.raises(ConfigError, match="faiss is not an option of the config group"):
        resolve(parse_space({"retriever": ["faiss"]}, "s"), dict(cfg.strategy), cfg,
                lambda k: groups.get(k, []), where="s", files="f")


def test_sampled_values_become_overrides_that_compose():
    cfg = compose_cfg(["strategy=lora"])
    params = resolve(parse_space({"train": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}},
                                  "adapter": {"target_modules": [["q_proj", "v_proj"]]},
                                  "prompt": {"instruction": ["Say it: 'yes', or \"no\"."]}},
                                 "s"), dict(cfg.strategy), cfg, lambda k: [], where="s",
                     files="f")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    trial = study.ask()
    values = suggest(trial, params)
    assert values["adapter.target_modules"] == ["q_proj", "v_proj"]
    assert from_stored(trial.params, params) == values  # decoded as drawn
    from harness.run.compose import effective_config
    run = effective_config(compose_cfg(["strategy=lora", *overrides("lora", params, values)]))
    assert math.isclose(run.strategy.train.lr, values["train.lr"])
    assert list(run.strategy.adapter.target_modules) == ["q_proj", "v_proj"]
    assert run.prompt.instruction == "Say it: 'yes', or \"no\"."


def test_hydra_values_are_quoted_where_the_grammar_needs_it():
    assert hydra_value(None) == "null" and hydra_value(True) == "true"
    assert hydra_value("bm25") == "bm25" and hydra_value("all-linear") == "all-linear"
    assert hydra_value("two words") == "'two words'"
    assert hydra_value("null") == "'null'"  # the string, not None
    assert hydra_value([1, "a b"]) == "[1,'a b']"


@pytest.mark.parametrize("kw, says", [
    ({"trials": 0}, "search.trials must be >= 1"),
    ({"budget_usd": 0}, "search.budget_usd must be > 0"),
    ({"sampler": "grid"}, "unknown search.sampler 'grid'"),
    ({"pruner": "hyperband"}, "unknown search.pruner 'hyperband'"),
])
def test_bad_search_settings_fail(kw, says):
    with pytest.raises(ConfigError, match=says):
        SearchSettings(**kw)


def test_random_draws_go_out_together_tpe_and_a_budget_one_at_a_time():
    assert SearchSettings(trials=6).batch() == 6
    assert SearchSettings(trials=6, sampler="tpe").batch() == 1
    assert SearchSettings(trials=6, budget_usd=0.5).batch() == 1
    assert SearchSettings(trials=6, batch_size=2).batch() == 2


def test_one_se_chooses_the_cheapest_trial_the_validation_set_cannot_tell_from_the_best():
    """19 validation items: 0.737 and 0.684 are one item apart, inside one standard error
    (0.10); the search must not pay 5x per query for the noise (issue: a rag config 5x
    dearer chosen on 19 items tested below the default)."""
    from harness.search.select import Candidate, choose

    se = ((14 + 2) / 23 * (1 - (14 + 2) / 23) / 23) ** 0.5  # Agresti-Coull, 14 of 19 right
    trials = [Candidate(0, 0.737, 6.03, se), Candidate(1, 0.737, 6.10, se),
              Candidate(2, 0.684, 1.15, se), Candidate(3, 0.526, 0.40, se)]
    one_se, best = choose(trials, "one_se"), choose(trials, "best")
    assert best.number == 0  # the top score, the tie to the cheaper
    assert one_se.number == 2 and one_se.best == 0 and one_se.within_noise == {0, 1, 2}
    assert 3 not in one_se.within_noise  # 0.526 is beyond the noise: not a candidate
    # a clear winner (a large validation set) is chosen by both rules
    sure = [Candidate(0, 0.80, 6.0, 0.01), Candidate(1, 0.70, 1.0, 0.01)]
    assert choose(sure, "one_se").number == choose(sure, "best").number == 0
