"""Search spaces: what a fair contest searches for each strategy (conf/search/<strategy>.yaml,
composed under `search.space.<strategy>`), checked against the strategy's config before any
trial runs, sampled by an Optuna trial and turned into Hydra overrides.

A space is a mapping, nested like the config it changes, whose leaves are either
    a list                     the choices (categorical):       k: [1, 3, 5]
    {choices: [...]}           the same (beside other keys at a config group: the group's
                               options, and keys inside it)
    {low: L, high: H}          a number between L and H: an int when both are ints, else a
                               float; `log: true` samples on a log scale, `step` rounds
A key names a key of the strategy's config (`train.lr` is `strategy.train.lr`) when the
strategy has it; otherwise a key of the run's config (`chunker.size`, `prompt.instruction`)
or a config group, whose choices are its option names (`retriever: [dense, bm25]`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

SPEC_KEYS = {"choices", "low", "high", "log", "step", "type"}
_MISSING = object()


@dataclass(frozen=True)
class Param:
    key: str  # as written in the space: "train.lr", "retriever"
    kind: str  # categorical | int | float
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    target: str = ""  # "strategy" | "run" | "group": what the key changes (set by resolve)

    def describe(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        scale = ", log scale" if self.log else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{scale}"


def _is_spec(node: Any) -> bool:
    return isinstance(node, list | tuple) or (
        isinstance(node, Mapping) and ("choices" in node or {"low", "high"} <= set(node)))


def leaves(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The space's specs by dotted key (nested mappings are walked into). A mapping with
    `choices` beside other keys is both: the choices of a config group and keys inside it
    (`retriever: {choices: [dense, bm25], rerank: [null, lm]}`)."""
    out: dict[str, Any] = {}
    for k, v in space.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and "choices" in v and set(v) - SPEC_KEYS:
            out[key] = {"choices": v["choices"]}
            out.update(leaves({n: x for n, x in v.items() if n not in SPEC_KEYS}, key + "."))
        elif _is_spec(v):
            out[key] = v
        elif isinstance(v, Mapping) and v:
            out.update(leaves(v, key + "."))
        else:
            out[key] = v  # not a spec: parse_param says why
    return out


def parse_param(key: str, spec: Any, where: str) -> Param:
    """One leaf of a space, checked for shape; `where` names it in errors."""
    if isinstance(spec, Mapping) and "choices" in spec:
        spec = spec["choices"]
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"{where}.{key}: an empty list of choices")
        return Param(key, "categorical", tuple(_plain(c) for c in spec))
    if not isinstance(spec, Mapping) or not {"low", "high"} <= set(spec):
        raise ConfigError(f"{where}.{key}: give a list of choices, [a, b, c], or a range, "
                          f"{{low: L, high: H, log: true}}; got {spec!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"{where}.{key}: unknown range setting(s) {', '.join(sorted(unknown))}; "
                          f"a range takes {', '.join(sorted(SPEC_KEYS - {'choices'}))}")
    low, high = spec["low"], spec["high"]
    kind = spec.get("type") or ("int" if _is_int(low) and _is_int(high) else "float")
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.{key}.type must be int or float, got {kind!r}")
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{key}: low and high must be numbers") from None
    log = bool(spec.get("log", False))
    if not low < high or (log and low <= 0):
        raise ConfigError(f"{where}.{key}: need low < high" + (" and low > 0 on a log scale"
                                                               if log else "")
                          + f", got [{low:g}, {high:g}]")
    step = spec.get("step")
    return Param(key, kind, low=low, high=high, log=log,
                 step=float(step) if step is not None else None)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _plain(value: Any) -> Any:
    """A choice as plain Python (OmegaConf lists and mappings become list and dict)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parse_space(space: Mapping[str, Any] | None, where: str) -> list[Param]:
    params = [parse_param(k, v, where) for k, v in leaves(space or {}).items()]
    if not params:
        raise ConfigError(f"{where} is empty: nothing to search (give it at least one key, "
                          f"e.g. {where}.<key>=[a,b])")
    return params


def resolve(params: list[Param], strategy_cfg: Mapping[str, Any], run_cfg: Mapping[str, Any],
            group_options: Callable[[str], list[str]], *, where: str,
            files: str) -> list[Param]:
    """Each param with what it changes: a key of the strategy, of the run, or a config group
    (its choices checked against the group's options). A key none of them has fails here,
    naming the key and the files it was looked for in."""
    out = []
    for p in params:
        if _select(strategy_cfg, p.key) is not _MISSING:
            target = "strategy"
        elif group_options(p.key):
            options = group_options(p.key)
            bad = [c for c in p.choices if str(c) not in options] if p.kind == "categorical" \
                else ["a range"]
            if bad:
                raise ConfigError(f"{where}.{p.key}: {', '.join(map(str, bad))} is not an option "
                                  f"of the config group '{p.key}'; choose from: {', '.join(options)}")
            target = "group"
        elif _select(run_cfg, p.key) is not _MISSING:
            target = "run"
        else:
            raise ConfigError(f"{where}.{p.key}: the strategy has no key '{p.key}' and the run no "
                              f"such key or config group ({files})")
        out.append(Param(p.key, p.kind, p.choices, p.low, p.high, p.log, p.step, target))
    return out


def _select(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """The values an Optuna trial draws for `params` (a choice that is a list or a mapping
    is drawn by its JSON text, which Optuna's categorical distributions accept)."""
    values = {}
    for p in params:
        if p.kind == "categorical":
            labels = [_label(c) for c in p.choices]
            values[p.key] = _unlabel(trial.suggest_categorical(p.key, labels), p)
        elif p.kind == "int":
            values[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log,
                                              step=int(p.step or 1))
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log,
                                                step=None if p.log else p.step)
    return values


def _label(choice: Any) -> Any:
    return json.dumps(choice) if isinstance(choice, list | dict) else choice


def _unlabel(label: Any, p: Param) -> Any:
    for c in p.choices:
        if _label(c) == label:
            return c
    return label


def from_stored(stored: Mapping[str, Any], params: list[Param]) -> dict[str, Any]:
    """A trial's values as Optuna stored them (its `params`), decoded like `suggest`."""
    return {p.key: _unlabel(stored[p.key], p) if p.kind == "categorical" else stored[p.key]
            for p in params if p.key in stored}


_BARE = re.compile(r"^[A-Za-z_][\w\-./]*$")


def hydra_value(value: Any) -> str:
    """`value` in Hydra's override grammar (quoted where it must be)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _BARE.match(text) and text not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def overrides(strategy: str, params: list[Param], values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides that set `values`. A strategy key goes through per_strategy (merged
    last, so a preset's own per_strategy settings cannot undo the search's value)."""
    out = []
    for p in params:
        v = hydra_value(values[p.key])
        if p.target == "strategy":
            out.append(f"++per_strategy.{strategy}.{p.key}={v}")
        else:  # a group choice or a run key: the same form
            out.append(f"{p.key}={v}")
    return out
