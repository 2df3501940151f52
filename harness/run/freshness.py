"""The freshness scenario of one run: after the strategy is fit on the first version of
the task, a second version arrives in which some facts changed (harness.data.update).

    before   the fitted strategy answers the changed questions: how stale is it?
    update   each of the strategy's update paths, timed (rag: re-index the changed
             documents; lora/full: continue from the artifact on what changed, or retrain;
             hybrid: re-index, and optionally either tuned path; prompt: nothing)
    after    the updated strategy answers every eval question of the new version: changed
             ones (did it learn?) and unchanged ones (what did the update break?)

A stale answer is the first version's answer given to a changed question: the chosen
choice is an old gold answer (the synthetic task always offers it), or, with generation
only, the output contains one. Each update mode starts from the fitted first version
(the strategy is fit again between modes; caches make that cheap, and it is not timed).
Predictions go to predictions_fresh.jsonl, one row per (phase, question).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.run_files import write_jsonl
from harness.run_record import item_score_of
from harness.scoring import contains, score_item
from harness.types import Example, Prediction, Strategy, Task

log = logging.getLogger(__name__)


def selected_modes(strategy_modes: Sequence[str], tuned_modes: Sequence[str]) -> list[str]:
    """The strategy's update modes, keeping of the tuned ones (continue, retrain, and the
    hybrid's reindex+<mode>) only those `freshness.tuned_modes` asks for."""
    keep = []
    for m in strategy_modes:
        tuned = m.split("+", 1)[1] if "+" in m else m
        if tuned in ("continue", "retrain") and tuned not in tuned_modes:
            continue
        keep.append(m)
    return keep


def is_stale(ex: Example, pred: Prediction, old_answers: Sequence[str]) -> bool:
    if ex.choices and pred.choice is not None:
        return ex.choices[pred.choice] in old_answers
    return bool(pred.output) and contains(pred.output, old_answers) > 0


def _primary(item: dict[str, float | None]) -> float:
    """The item's primary score by the run record's one rule (harness.run_record): choice
    correctness; else the generated answer contains the gold; else recall@k."""
    return item_score_of(item) or 0.0


def _phase(strategy: Strategy, examples: Sequence[Example], change: TaskUpdate, phase: str,
           rows: list[dict]) -> dict[str, Any]:
    """Accuracy on changed / unchanged questions and the stale-answer rate; adds the
    per-question rows to `rows`."""
    correct = {"changed": [], "unchanged": []}
    stale = []
    for e, p in zip(examples, strategy.predict(examples)):
        item = score_item(e, p, strategy.retrieval_k, strategy.cites)
        was_changed = e.id in change.changed_example_ids
        old = change.old_answers.get(e.id, ())
        s = is_stale(e, p, old) if was_changed else None
        correct["changed" if was_changed else "unchanged"].append(_primary(item))
        if s is not None:
            stale.append(float(s))
        rows.append({"phase": phase, "id": e.id, "changed": was_changed, "gold": list(e.answers),
                     "old_gold": list(old), "choices": list(e.choices), "choice": p.choice,
                     "output": p.output, "correct": _primary(item), "stale": s,
                     "citations": [c.source_id for c in p.citations]})

    def mean(xs: list[float]) -> float | None:
        return float(np.mean(xs)) if xs else None

    return {"accuracy_changed": mean(correct["changed"]),
            "accuracy_unchanged": mean(correct["unchanged"]),
            "stale_rate": mean(stale), "n_changed": len(correct["changed"]),
            "n_unchanged": len(correct["unchanged"])}


def run_freshness(strategy: Strategy, task: Task, change: TaskUpdate, *, eval_split: str,
                  limit: int | None, tuned_modes: Sequence[str], run_dir: Path) -> dict[str, Any]:
    """Measure the scenario for a fitted `strategy`; returns the run's `freshness` metrics."""
    base = {"scenario": change.summary()}
    if not hasattr(strategy, "update"):
        return {**base, "supported": False,
                "reason": f"strategy '{strategy.name}' has no update path"}
    new_eval = change.new.split(eval_split)
    new_eval = new_eval[:limit] if limit else new_eval
    changed = [e for e in new_eval if e.id in change.changed_example_ids]
    if not changed:
        raise ConfigError(f"freshness: no {eval_split} question changed between the versions "
                         f"({len(change.changed_example_ids)} changed in all); raise "
                         "task.new_version.share or give a second examples file with new answers")
    rows: list[dict] = []
    log.info("freshness: %d of %d %s questions changed; answering them before the update",
             len(changed), len(new_eval), eval_split)
    t0 = time.perf_counter()
    before = _phase(strategy, changed, change, "before", rows)
    before["predict_s"] = time.perf_counter() - t0
    modes = selected_modes(strategy.update_modes, tuned_modes)
    results: dict[str, Any] = {}
    for i, mode in enumerate(modes):
        if i:  # every mode starts from the fitted first version (caches make this cheap)
            strategy.fit(task)
        log.info("freshness: update mode '%s'", mode)
        t0 = time.perf_counter()
        report = strategy.update(change, mode)
        update_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        after = _phase(strategy, new_eval, change, mode, rows)
        results[mode] = {
            **after, "predict_s": time.perf_counter() - t0,
            "update_s": update_s,
            # what the cost model charges: the seconds the update's build took when it was
            # computed (also when a cache supplied it this time)
            "update_build_s": report.wall_s if report.build_s is None else report.build_s,
            "cache_hit": report.cache_hit, "train_tokens": report.train_tokens,
            "notes": _plain(report.notes),
        }
        log.info("freshness %s: changed %.3f -> %.3f, unchanged %.3f, stale %.3f -> %.3f, "
                 "update %.1f s", mode, before["accuracy_changed"], after["accuracy_changed"],
                 _nan(after["accuracy_unchanged"]), _nan(before["stale_rate"]),
                 _nan(after["stale_rate"]), update_s)
    write_jsonl(run_dir / "predictions_fresh.jsonl", rows)
    return {**base, "supported": True, "split": eval_split, "before": before, "modes": results}


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x


def _plain(notes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The scalars of a report's notes, and the index update's as "index.<key>"."""
    out: dict[str, Any] = {}
    for k, v in notes.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[prefix + k] = v
        elif isinstance(v, Mapping) and k == "index" and not prefix:
            out.update(_plain(v, prefix=f"{k}."))
    return out
