"""Models behind one contract (harness.models.contract.LanguageModel):

    local    a transformers model in this process (harness.models.local): the bundled GGUF,
             a tiny random model, any Hugging Face id or path (conf/model/smollm2-135m.yaml,
             tiny-random.yaml, hf.yaml)
    served   an OpenAI-compatible endpoint (harness.models.served): vLLM, llama.cpp's
             server, a hosted API (conf/model/openai.yaml)

`get_lm(cfg)` builds either from a model config, once per process and config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.models.contract import (
    LETTER_FLOOR,
    LETTERS,
    SCORING_METHODS,
    ChoiceScores,
    Generation,
    LanguageModel,
    LoglikCheck,
    Message,
    Prompt,
    check_method,
    letter_logprobs,
    plain_prompt,
    require_local,
    total_params,
)

__all__ = ["LETTERS", "LETTER_FLOOR", "SCORING_METHODS", "ChoiceScores", "Generation",
           "LanguageModel", "LoglikCheck", "Message", "Prompt", "check_method", "get_lm",
           "is_served", "letter_logprobs", "model_label", "plain_prompt", "require_local",
           "total_params"]

_LOADED: dict[str, LanguageModel] = {}


def is_served(cfg: Mapping[str, Any]) -> bool:
    """A model config that names an endpoint (conf/model/openai.yaml) rather than weights."""
    return cfg.get("base_url") is not None


def model_label(cfg: Mapping[str, Any]) -> str:
    """What a run records as its model: the served model's id, or the local name or path."""
    return str(cfg.get("name")) if is_served(cfg) else str(cfg.get("name_or_path"))


def _key(cfg: Mapping[str, Any]) -> str:
    return repr(sorted((k, str(v)) for k, v in cfg.items()))


def is_loaded(cfg: Mapping[str, Any]) -> bool:
    """Whether this process holds the model of `cfg` already (get_lm would reuse it)."""
    return _key(cfg) in _LOADED


def get_lm(cfg: Mapping[str, Any]) -> LanguageModel:
    """The model of a model config, built once per process and config; later calls reuse it.
    A served model contacts its endpoint only when a request is not in its response cache."""
    key = _key(cfg)
    if key not in _LOADED:
        if is_served(cfg):
            from harness.models.served import ServedLM

            _LOADED[key] = ServedLM.from_config(cfg)
        else:
            from harness.models.local import load_local

            _LOADED[key] = load_local(cfg)
    return _LOADED[key]
