"""The run record: what a run directory's metrics.json and predictions.jsonl hold, the
per-item metrics (their metrics.json key, their key in an item's `scores`, direction, kind
and label), the one rule that picks a run's primary metric, and the registry a strategy's
or a user's own metric joins.

The runner writes by it, freshness scores by it, and the report reads by it (the report
imports no model code: a user's metric reaches it through what the run wrote, `metric_info`
in metrics.json and the item scores in predictions.jsonl).

A metric of your own is one function of a test item and its prediction, and a name:

    from harness.run_record import register_metric

    @register_metric("short_answer", label="answer of at most 5 words", kind="binary")
    def short_answer(example, prediction):
        return None if prediction.output is None else float(len(prediction.output.split()) <= 5)

Its module is imported when the run starts (a strategy module that defines it, or
`metrics=[mymodule]` in the run's config); every run then records it per item and as a
mean, and `harness-report --primary-metric short_answer` ranks, tests and tables by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("binary", "continuous")

# metrics.json: the keys every complete run has, and what they are (docs/reference.md).
RUN_KEYS: dict[str, str] = {
    "status": "running | complete | failed (a failed run also has error and traceback)",
    "strategy": "the strategy's name (conf/strategy/<name>.yaml: name)",
    "task": "the task's name", "model": "the model's name or path, or a served model's id",
    "seed": "the run seed", "started_at": "UTC", "finished_at": "UTC",
    "dtype": "what an in-process model computed in (model.dtype resolved)",
    "dtype_why": "why: model.dtype=auto's rule for this device (harness.system.dtype_rule), "
                 "or the setting",
    "versions": "library versions and the git commit",
    "split": "the split predictions were scored on (eval_split: test, or val for a run that "
             "chooses settings)", "n_examples": "items scored",
    "split_hash": "sha256 over the sorted example ids of each split",
    "primary_metric": "the metric the report ranks by unless told otherwise (primary_metric())",
    "metric_info": "every per-item metric the run recorded: item key, label, kind, direction",
    "trains": "the strategy changes the model's weights", "can_cite": "predictions carry sources",
    "retrieval_k": "passages retrieved per question (null: no retrieval)",
    "leakage": "whether any test example reached what fit built",
    "fit": "the FitReport: seconds, parameters, tokens, FLOPs, artifact bytes, notes, forgetting",
    "build_s": "seconds the build took when computed (also on a cache hit)",
    "predict_s": "predict seconds (cached predictions: what they took when computed)",
    "latency_p50_s": "per query: the wall time of what answered it", "latency_p95_s": "",
    "seconds_per_query": "predict seconds / queries",
    "prompt_tokens": "tokens in the prompts", "completion_tokens": "tokens generated",
    "build_work": "counted work of fit (harness.cost.work)", "predict_work": "of predict",
    "modelled_build_s": "work / this machine's profile (null: not modelled, see modelled.off)",
    "modelled_predict_s": "", "cost": "the prices the report turns seconds into money with",
    "scoring_method": "loglik | letter: how choices were scored (answer.choice_scoring)",
    "served": "a served model's endpoint, concurrency and price (never its key)",
    "requests_sent": "served: requests that went out", "requests_cached": "served: from the cache",
    "input_tokens": "served: from the server's usage", "output_tokens": "",
    "cost_usd": "served: what its requests cost", "usd_per_query": "served: per query",
    "seen": "tuned strategies: the same metrics on train-split questions",
    "freshness": "the update scenario (freshness.enabled=true)",
    "search": "a search's run (experiment=fair): phase (trial on the validation split, or "
              "final: the chosen trial on the test split), study, trial, pruned, "
              "pruned_at_epoch; null outside a search",
}


@dataclass(frozen=True)
class Metric:
    name: str  # the run's mean in metrics.json
    item_key: str  # the item's score in predictions.jsonl -> scores
    label: str  # what the report calls it
    kind: str = "binary"  # binary (0/1 per item: McNemar) | continuous (paired bootstrap)
    higher_is_better: bool = True
    # per item: (example, prediction) -> a score, or None where it does not apply; None for
    # the built-in metrics, which harness.scoring computes
    compute: Callable[[Any, Any], float | None] | None = None

    def info(self) -> dict[str, Any]:
        """What a run writes about the metric (metrics.json -> metric_info)."""
        return {k: v for k, v in asdict(self).items() if k not in ("compute", "name")}


def _builtin(name: str, item_key: str, label: str, kind: str = "binary") -> Metric:
    return Metric(name, item_key, label, kind)


METRICS: dict[str, Metric] = {m.name: m for m in (
    _builtin("choice_accuracy", "choice_correct", "choice accuracy"),
    _builtin("exact_match", "exact_match", "SQuAD exact match"),
    _builtin("f1", "f1", "F1", "continuous"),
    _builtin("contains", "contains", "contains"),
    _builtin("semantic_similarity", "semantic_similarity", "semantic similarity", "continuous"),
    _builtin("semantic_correct", "semantic_correct", "semantic call"),
    _builtin("judge_correct", "judge_correct", "judge: correct"),
    _builtin("judge_score", "judge_score", "judge score", "continuous"),
    _builtin("groundedness", "groundedness", "groundedness", "continuous"),
    _builtin("recall_at_k", "recall_at_k", "recall@k", "continuous"),
    _builtin("hit_at_k", "hit_at_k", "hit@k"),
    _builtin("mrr", "mrr", "MRR", "continuous"),
    _builtin("ndcg_at_10", "ndcg_at_10", "nDCG@10", "continuous"),
)}
BUILTIN = tuple(METRICS)

# The primary metric of a run: the first of these that the run has (choices: choice
# accuracy; else a generated answer: contains; else, retrieval only: recall@k).
PRIMARY_ORDER = ("choice_accuracy", "contains", "recall_at_k")


def register_metric(name: str, fn: Callable[[Any, Any], float | None] | None = None, *,
                    label: str | None = None, kind: str = "continuous",
                    higher_is_better: bool = True) -> Any:
    """Add a per-item metric: `fn(example, prediction) -> float | None`. Usable as a call
    (`register_metric("x", fn)`) or a decorator (`@register_metric("x")`)."""
    if kind not in KINDS:
        raise ValueError(f"metric '{name}': kind must be one of {', '.join(KINDS)}, got '{kind}'")
    if name in BUILTIN:
        raise ValueError(f"metric '{name}' is built in; choose another name")

    def add(f: Callable[[Any, Any], float | None]) -> Callable[[Any, Any], float | None]:
        METRICS[name] = Metric(name, name, label or name.replace("_", " "), kind,
                               higher_is_better, f)
        return f

    return add(fn) if fn is not None else add


def user_metrics() -> list[Metric]:
    """The registered metrics a run computes itself (not the built-in ones)."""
    return [m for m in METRICS.values() if m.compute is not None]


def primary_metric(metrics: Mapping[str, Any], has_choices: bool) -> str:
    """The one rule: the first metric of PRIMARY_ORDER the run has a value for; a run with
    none (no item scored) falls back to what its items were: choices or free text."""
    return next((k for k in PRIMARY_ORDER if metrics.get(k) is not None),
                "choice_accuracy" if has_choices else "contains")


def item_score_of(scores: Mapping[str, Any]) -> float | None:
    """An item's primary score by the same rule (freshness scores single items by it):
    choice correctness, else contains, else recall@k."""
    for name in PRIMARY_ORDER:
        v = scores.get(METRICS[name].item_key)
        if v is not None:
            return float(v)
    return None


def metric_info(runs_info: list[Mapping[str, Any]] | None = None) -> dict[str, Metric]:
    """The metrics known to the report: the built-in ones and those the runs recorded in
    metric_info (a user's metric, whose code the report does not import)."""
    known = {k: v for k, v in METRICS.items() if k in BUILTIN}
    for info in runs_info or []:
        for name, d in (info or {}).items():
            if name not in known:
                known[name] = Metric(name, d.get("item_key", name), d.get("label", name),
                                     d.get("kind", "continuous"), bool(d.get("higher_is_better", True)))
    return known
