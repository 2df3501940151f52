"""What a run's predictions add up to: the per-item scores (harness.scoring and the metrics
registered in harness.run_record), the run record's score, strategy, leakage and timing fields,
and the rows of predictions.jsonl. The runner (harness.run.runner) calls these after
predict."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.cost.fields import measured_usage
from harness.run_files import STATUS_COMPLETE, write_jsonl
from harness.run_record import METRICS, user_metrics
from harness.scoring import aggregate, score_item
from harness.types import Example, FitReport, Prediction, Strategy, Task


@dataclass
class Predicted:
    """What predict produced and what it took."""
    examples: list[Example]
    preds: list[Prediction]
    predict_s: float  # charged: what the predictions took when computed (caches included)
    wall_s: float  # measured now
    work: dict[str, float]
    others_share: float | None  # other processes' CPU share meanwhile
    cache_hits: int
    requests: dict[str, float] | None  # a served model's requests (ServedMeter differences)


def record_fields(cfg: DictConfig, task: Task, strategy: Strategy, fit: FitReport, run: Predicted,
            items: list[dict], free_form: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The run record's task, score, strategy, fit and timing fields (harness.run_record)."""
    return {
        "status": STATUS_COMPLETE,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": cfg.eval_split,
        "n_examples": len(run.examples),
        "split_hash": task.split_hash,
        "split_ids_hash": task.split_ids_hash,
        "split_sizes": {s: len(task.split(s)) for s in ("train", "val", "test")},
        "corpus": {"documents": len(task.corpus), **task.corpus_info},  # a folder: skipped files
        **accuracy(items),
        "metric_info": {m.name: m.info() for m in METRICS.values()},
        **free_form,  # semantic threshold and its source, the judge, evaluation seconds
        **describe_strategy(strategy),
        "leakage": leakage(strategy, fit, task),
        **seen_eval(cfg, strategy, task, run_dir),  # tuned: the train-split questions
        "fit": fit.to_dict(),
        "fit_s": fit.wall_s,
        "build_s": fit.wall_s if fit.build_s is None else fit.build_s,
        "predict_s": run.predict_s,
        "predict_wall_s": run.wall_s,  # less than predict_s when the prediction cache hit
        "prediction_cache_hits": run.cache_hits,
        **measured_usage(run.preds, run.predict_s),
    }


def accuracy(items: list[dict]) -> dict[str, float | None]:
    """The run's mean of every per-item metric (harness.run_record), and the other per-item
    scores (citations; groundedness's unsupported share)."""
    m = aggregate(items)
    return {**{name: m.get(metric.item_key) for name, metric in METRICS.items()},
            "citation_precision": m.get("citation_precision"),
            "citation_recall": m.get("citation_recall"),
            "groundedness_lexical": m.get("groundedness_lexical"),
            "groundedness_embedding": m.get("groundedness_embedding"),
            "unsupported_rate": m.get("unsupported")}


def score_items(strategy: Strategy, examples: list[Example], preds: list[Prediction]) -> list[dict]:
    """Per item: the built-in scores (harness.scoring) and every registered metric of the
    user's own (harness.run_record.register_metric)."""
    items = [score_item(e, p, strategy.retrieval_k, strategy.cites) for e, p in zip(examples, preds)]
    for metric in user_metrics():
        for it, e, p in zip(items, examples, preds):
            value = metric.compute(e, p)
            it[metric.item_key] = None if value is None else float(value)
    return items


def describe_strategy(strategy: Strategy) -> dict[str, Any]:
    """What the report needs to know about the strategy, from the strategy itself."""
    cls = type(strategy)
    return {"trains": bool(strategy.trains), "can_cite": bool(strategy.cites),
            "retrieval_k": strategy.retrieval_k,
            "update_modes": list(getattr(strategy, "update_modes", ()) or ()),
            "strategy_class": f"{cls.__module__}.{cls.__qualname__}"}


def leakage(strategy: Strategy, fit: FitReport, task: Task) -> dict[str, Any]:
    """Did any test example reach what the strategy saw in fit (few-shot pool, training
    rows)? The val split may be used for model selection (early stopping)."""
    if fit.examples_seen is None:
        return {"checked": False,
                "reason": f"strategy '{strategy.name}' does not report FitReport.examples_seen"}
    test = {e.id for e in task.examples if e.split == "test"}
    overlap = sorted(fit.examples_seen & test)
    if overlap:
        raise RuntimeError(f"leakage: strategy '{strategy.name}' saw {len(overlap)} test "
                           f"examples in fit, e.g. {overlap[:3]}")
    return {"checked": True, "examples_seen_in_fit": len(fit.examples_seen), "test_seen_in_fit": 0}


def seen_eval(cfg: DictConfig, strategy: Strategy, task: Task, run_dir: Path) -> dict[str, Any]:
    """Strategies that train are also scored on train-split questions (facts they were
    trained on), beside the test split; written to predictions_seen.jsonl. Returns the
    record's `seen` (None for the others) and `seen_s`, the seconds it took."""
    limit = int(cfg.get("seen_eval_limit") or 0)
    if not strategy.trains or limit <= 0:
        return {"seen": None, "seen_s": 0.0}
    t0 = time.perf_counter()
    examples = task.split("train")[:limit]
    preds = strategy.predict(examples)
    items = score_items(strategy, examples, preds)
    write_jsonl(run_dir / "predictions_seen.jsonl",
                prediction_rows(examples, preds, items, strategy))
    return {"seen": {"split": "train", "n_examples": len(examples), **accuracy(items)},
            "seen_s": time.perf_counter() - t0}


def prediction_rows(examples: list[Example], preds: list[Prediction], items: list[dict],
                    strategy: Strategy, details: list[dict] | None = None,
                    task: Task | None = None):
    """The lines of predictions.jsonl. With the task: each item's `source_in_train`, whether
    a train-split question asks about one of its source documents (tuning and few-shot pools
    saw that document asked about; the item explorer filters on it)."""
    trained = ({s for e in task.examples if e.split == "train" for s in e.source_ids}
               if task is not None else None)
    for i, (e, p, s) in enumerate(zip(examples, preds, items)):
        yield {
            "id": e.id, "question": e.question, "gold": list(e.answers),
            "choices": list(e.choices), "gold_choice": e.gold_choice if e.choices else None,
            "source_ids": list(e.source_ids), "output": p.output, "choice": p.choice,
            "choice_logprobs": list(p.choice_logprobs), "scores": s,
            "usage": p.to_dict()["usage"], "citations": p.to_dict()["citations"],
            "can_cite": strategy.cites, "split": e.split,
            **({"source_in_train": bool(trained & set(e.source_ids))}
               if trained is not None and e.source_ids else {}),
            **({"meta": plain(e.meta)} if e.meta else {}),
            **(details[i] if details else {}),
        }


def plain(value: Any) -> Any:
    """A value JSON can hold in any reader: NaN and infinities (a blank spreadsheet cell)
    become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
