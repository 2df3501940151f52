"""Find run directories and load their metrics into one table (one row per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ["run", "strategy", "seed", "status", "n_examples", "choice_accuracy", "exact_match",
           "f1", "contains", "recall_at_k", "mrr", "citation_precision", "citation_recall",
           "fit_s", "predict_s", "latency_p50_s", "latency_p95_s", "seconds_per_query",
           "prompt_tokens", "completion_tokens", "peak_mem_mb", "split_hash", "model", "task",
           "error"]
# Nested fields flattened into columns: (column, path in metrics.json)
NESTED = [
    ("seen_choice_accuracy", ("seen", "choice_accuracy")),
    ("trainable_params", ("fit", "trainable_params")),
    ("total_params", ("fit", "total_params")),
    ("train_tokens", ("fit", "train_tokens")),
    ("flops_est", ("fit", "flops_est")),
    ("artifact_bytes", ("fit", "artifact_bytes")),
    ("cache_hit", ("fit", "cache_hit")),
    ("train_wall_s", ("fit", "notes", "train_wall_s")),
    ("control_perplexity_delta", ("fit", "notes", "forgetting", "control_perplexity_delta")),
    ("control_greedy_agreement", ("fit", "notes", "forgetting", "control_greedy_agreement")),
]


def _get(m: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(m, dict):
            return None
        m = m.get(key)
    return m


def find_runs(paths: list[Path]) -> list[Path]:
    """Every directory under `paths` that holds a metrics.json."""
    found = set()
    for p in paths:
        if (p / "metrics.json").is_file():
            found.add(p)
        found.update(m.parent for m in p.rglob("metrics.json"))
    return sorted(found)


def load_runs(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for run in find_runs(paths):
        try:
            m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError) as e:
            m = {"status": "unreadable", "error": f"metrics.json: {e}"}
        if m.get("status") == "running":
            m["status"] = "incomplete"  # killed or still running: no numbers from it
        row = {"run": str(run), **{c: m.get(c) for c in COLUMNS if c != "run"}}
        row.update({col: _get(m, path) for col, path in NESTED})
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + [c for c, _ in NESTED])
