"""What a run is built from: the effective config (per-strategy overrides merged), the text
its config.yaml records, and the strategy factory (the runner reaches a strategy only
through `hydra.utils.instantiate`)."""

from __future__ import annotations

import contextlib
import copy
import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError

from harness.answering import AnswerSettings
from harness.context import StrategyContext
from harness.errors import ConfigError
from harness.models import LanguageModel
from harness.prompting import PromptSettings
from harness.retrieval import get_embedder
from harness.system import config_dir, group_config
from harness.types import Pruning, Strategy, missing_members


def strategy_factory(cfg: DictConfig, pruning: Pruning | None = None
                     ) -> Callable[[LanguageModel], Strategy]:
    """Check the strategy's config and the run's prompt/answer settings before the model is
    loaded; returns lm -> the strategy, built from one StrategyContext and its knobs
    (`pruning`: a search trial's pruner, StrategyContext.pruning)."""
    prompt = PromptSettings(**OmegaConf.to_container(cfg.prompt, resolve=True))
    answer = AnswerSettings(**OmegaConf.to_container(cfg.answer, resolve=True))
    embedder_cfg = OmegaConf.to_container(cfg.embedder, resolve=True)
    retrieval_cfgs = {f"{k}_cfg": OmegaConf.to_container(cfg[k], resolve=True)
                      for k in ("retriever", "chunker") if cfg.get(k) is not None}
    target = cfg.strategy.get("_target_")
    where = f"strategy '{cfg.strategy.name}' ({target})"
    try:  # the context goes in after instantiation: Hydra would turn a dataclass into a dict
        partial_strategy = instantiate(cfg.strategy, _partial_=True, _convert_="all")
    except InstantiationException as e:
        raise ConfigError(f"{where}: {str(e).splitlines()[0]} (a strategy in your own module "
                          f"must be importable: run from its folder or install it)") from e

    def make(lm: LanguageModel) -> Strategy:
        ctx = StrategyContext(lm=lm, prompt=prompt, answer=answer,
                              get_embedder=partial(get_embedder, embedder_cfg),
                              seed=int(cfg.seed), cache_dir=cfg.get("cache_dir"),
                              progress=bool(cfg.progress), pruning=pruning, **retrieval_cfgs)
        try:
            strategy = partial_strategy(ctx)
        except TypeError as e:
            if "keyword argument" not in str(e):
                raise
            raise ConfigError(f"{where}: {e} (its config keys other than _target_ are passed "
                              "as keyword arguments after the StrategyContext)") from e
        missing = missing_members(strategy)
        if missing:
            raise ConfigError(f"{where} does not satisfy the strategy contract: it has no "
                              f"{', '.join(missing)} (see harness.types.Strategy)")
        return strategy

    return make


def import_libraries(cfg: DictConfig) -> None:
    """Import the libraries the strategy's fit and predict will import (`libraries`, an
    optional attribute of the class or function its `_target_` names), and the model's own
    modelling code in transformers, so that they are in the run's memory baseline: what
    importing them holds (peft, with the bitsandbytes it imports: about 165 MB resident;
    sentence-transformers, with scikit-learn: about 150 MB; a model class with what it
    imports: about 200 MB) is the process's, as a GPU's runtime is, and the run's peak is
    measured above it. A library that is not installed is left to the phase that needs it
    to name."""
    target = cfg.strategy.get("_target_")
    names = tuple(getattr(get_object(target), "libraries", ())) if target else ()
    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import_model_class(OmegaConf.to_container(cfg.model, resolve=True))


def import_model_class(model: dict) -> None:
    """Import the transformers class an in-process model will be built from (transformers
    imports it lazily, at load), where its config is at hand; nothing for a served model."""
    from harness.models.loading import GGUF_PREFIX, TINY

    name = str(model.get("name_or_path") or "")
    if not name or model.get("base_url"):
        return
    with contextlib.suppress(Exception):  # not at hand, or not a causal LM: loading will say
        from transformers import AutoConfig, LlamaConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        if name == TINY or name.startswith(GGUF_PREFIX):  # tiny: llama; the bundled GGUF: llama
            config = LlamaConfig()
        else:
            config = AutoConfig.from_pretrained(name, local_files_only=True,
                                                trust_remote_code=bool(model.get("trust_remote_code")))
        MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]


def effective_config(cfg: DictConfig) -> DictConfig:
    """cfg with `per_strategy[<strategy name>]` merged into `strategy` (and `per_strategy`
    dropped): what the run actually uses, and what its config.yaml records. Its `model` key,
    if any, is the model this strategy runs on instead of the run's (so one sweep can put a
    served model's prompt and rag beside a local model's tuned variants): a model config
    name (conf/model/<name>.yaml), a whole model config (one with base_url or name_or_path),
    or settings merged onto the run's model."""
    overrides = (cfg.get("per_strategy") or {}).get(cfg.strategy.name)
    if "per_strategy" not in cfg:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        del cfg["per_strategy"]
    if overrides is not None and "model" in overrides:
        overrides = OmegaConf.to_container(overrides, resolve=True)
        model = overrides.pop("model")
        with open_dict(cfg):
            cfg.model = _model_for(cfg, model)
    if overrides:
        try:
            merged = OmegaConf.merge(cfg.strategy, overrides)
        except ConfigKeyError as e:
            raise ConfigError(f"per_strategy.{cfg.strategy.name}: {e.msg.splitlines()[0]} "
                              f"(the keys must exist in strategy/{cfg.strategy.name}.yaml "
                              "or its defaults)") from None
        with open_dict(cfg):
            cfg.strategy = merged
    return cfg


def _model_for(cfg: DictConfig, model: Any) -> DictConfig:
    """The model config `per_strategy.<name>.model` asks for (see effective_config)."""
    where = f"per_strategy.{cfg.strategy.name}.model"
    if isinstance(model, str):
        named = group_config("model", model, [config_dir()], cfg.get("cache_dir"))
        if named is None:
            known = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
            raise ConfigError(f"{where}: no model config '{model}'; choose one of: "
                              f"{', '.join(known)}, or give its settings")
        return OmegaConf.create(named)
    if not isinstance(model, dict):
        raise ConfigError(f"{where} must be a model config name or a mapping, got {model!r}")
    if model.get("base_url") or model.get("name_or_path"):
        return OmegaConf.create(model)
    return OmegaConf.merge(cfg.model, model)


def config_text(cfg: DictConfig) -> str:
    """The resolved config as written to a run's config.yaml."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def same_config(run_dir: Path, cfg: DictConfig) -> bool:
    """The run folder holds this config's run. Tracking and the memory check do not count:
    turning a tracker on, or the check off, does not make a complete run run again."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if text == config_text(cfg):
        return True
    return _untracked(OmegaConf.create(text)) == _untracked(cfg)


def _untracked(cfg: DictConfig) -> str:
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("tracking", None)
    data.pop("memory", None)
    return OmegaConf.to_yaml(OmegaConf.create(data))
