"""Find run directories and read them: one summary row per run, per-item outcomes, and
variant labels (runs of one strategy that differ in a value other than the seed).

The report and the tracking both read runs through this module, so it sits below both."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.run_files import find_runs
from harness.run_record import BUILTIN, METRICS, Metric
from harness.run_record import metric_info as record_metrics

COLUMNS = ["run", "variant", "strategy", "seed", "status", "trains", "can_cite", "retrieval_k",
           "n_examples", "choice_accuracy",
           "exact_match", "f1", "contains", "recall_at_k", "mrr", "citation_precision",
           "citation_recall", "fit_s", "build_s", "predict_s", "latency_p50_s", "latency_p95_s",
           "latency_p99_s", "seconds_per_query", "prompt_tokens", "completion_tokens",
           "modelled_build_s", "modelled_predict_s", "modelled_seconds_per_query",
           "modelled_latency_p95_s", "build_flops", "predict_flops",
           "peak_mem_mb", "split_hash", "model", "task", "error"]
# Nested fields flattened into columns: (column, path in metrics.json)
NESTED = [
    ("seen_choice_accuracy", ("seen", "choice_accuracy")),
    ("trainable_params", ("fit", "trainable_params")),
    ("total_params", ("fit", "total_params")),
    ("train_tokens", ("fit", "train_tokens")),
    ("flops_est", ("fit", "flops_est")),
    ("artifact_bytes", ("fit", "artifact_bytes")),
    ("cache_hit", ("fit", "cache_hit")),
    ("modelled_build_uncertainty", ("modelled", "build_uncertainty")),
    ("modelled_predict_uncertainty", ("modelled", "predict_uncertainty")),
    ("fit_others_cpu_share", ("others_cpu_share", "fit")),
    ("predict_others_cpu_share", ("others_cpu_share", "predict")),
    ("train_wall_s", ("fit", "notes", "train_wall_s")),
    ("control_perplexity_before", ("fit", "forgetting", "control_perplexity_before")),
    ("control_perplexity_after", ("fit", "forgetting", "control_perplexity_after")),
    ("control_perplexity_delta", ("fit", "forgetting", "control_perplexity_delta")),
    ("control_greedy_agreement", ("fit", "forgetting", "control_greedy_agreement")),
    ("control_greedy_f1", ("fit", "forgetting", "control_greedy_f1")),
    ("hardware", ("cost", "hardware")),
    ("usd_per_hour", ("cost", "usd_per_hour")),
]
def known_metrics(runs: list[Run]) -> dict[str, Metric]:
    """The metrics a report may rank by: the built-in ones and every metric the runs
    recorded (metric_info: a user's own, registered with harness.run_record.register_metric)."""
    return record_metrics([r.metrics.get("metric_info") for r in runs])


def item_key(metric: str) -> str:
    """The per-item score key of a metric (a user's metric: its own name)."""
    return METRICS[metric].item_key if metric in METRICS else metric


def extra_metrics(runs: list[Run]) -> list[Metric]:
    """The metrics of the user's own that the runs recorded, by name."""
    return sorted((m for n, m in known_metrics(runs).items() if n not in BUILTIN),
                  key=lambda m: m.name)


# Config keys that never make two runs different variants: the seed is pooled, the rest
# are where and how a run was executed, not what it measured.
IGNORED_KEYS = ("seed", "results_dir", "cache_dir", "progress", "torch_threads", "hydra", "metrics",
                "tracking", "search", "eval_split", "report",
                "per_strategy", "cost", "strategy.cache_dir", "strategy.name",
                "strategy._target_", "seen_eval_limit", "prediction_cache", "retriever._target_")


@dataclass
class Run:
    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # flattened: "strategy.k" -> 3
    variant: str = ""
    _predictions: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return self.metrics.get("status") or "unreadable"

    @property
    def strategy(self) -> str:
        return self.metrics.get("strategy") or self.config.get("strategy.name") or "?"

    @property
    def build_s(self) -> float:
        """The seconds the run's build took when computed (also when a cache supplied it);
        runs written before build_s existed: fit.build_s, else fit_s."""
        m = self.metrics
        v = m.get("build_s")
        if v is None:
            v = (m.get("fit") or {}).get("build_s") or m.get("fit_s")
        return float(v) if v is not None else float("nan")

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def split(self) -> str:
        """The split it predicted on (eval_split): test, or val for a run that chose something
        (a search's trial, a sweep's validation run)."""
        return str(self.metrics.get("split") or self.config.get("eval_split") or "test")

    @property
    def on_val(self) -> bool:
        return self.split == "val"

    @property
    def signature(self) -> str:
        """Its config without the seed, the split and where it ran: a test run and the
        validation run of the same settings share it."""
        keys = {k: v for k, v in self.config.items()
                if not any(k == i or k.startswith(i + ".") for i in IGNORED_KEYS)}
        return json.dumps(keys, sort_keys=True, default=str)

    def search(self, key: str) -> Any:
        """search.<key> of a search's run (phase, study, trial), from its config."""
        return self.config.get(f"search.{key}")

    @property
    def primary_metric(self) -> str:
        return self.metrics.get("primary_metric", "choice_accuracy")

    def predictions(self) -> list[dict[str, Any]]:
        """The rows of predictions.jsonl (read once)."""
        if self._predictions is None:
            with (self.path / "predictions.jsonl").open(encoding="utf-8") as f:
                self._predictions = [json.loads(line) for line in f]
        return self._predictions

    def items(self, metric: str | None = None) -> pd.DataFrame:
        """Per test item: id, the score of `metric` (default: the run's primary metric),
        latency and its retrieval part."""
        key = item_key(metric or self.primary_metric)
        rows = []
        for p in self.predictions():
            u = p.get("usage") or {}
            rows.append({
                "id": p["id"], "score": (p.get("scores") or {}).get(key),
                "latency_s": u.get("latency_s", np.nan),
                "retrieval_latency_s": u.get("retrieval_latency_s", 0.0),
            })
        return pd.DataFrame(rows, columns=["id", "score", "latency_s", "retrieval_latency_s"])

    def scores(self) -> pd.DataFrame:
        """Per test item: id and every per-item score (one column each)."""
        return pd.DataFrame([{"id": p["id"], **(p.get("scores") or {})}
                             for p in self.predictions()])


def _get(m: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(m, dict):
            return None
        m = m.get(key)
    return m


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as 'a.b.c' -> value; lists and empty mappings as JSON text."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v
    return out


def read_runs(paths: list[Path]) -> list[Run]:
    runs = []
    for path in find_runs(paths):
        try:
            m = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError) as e:
            m = {"status": "unreadable", "error": f"metrics.json: {e}"}
        if m.get("status") == "running":
            m["status"] = "incomplete"  # killed or still running: no numbers from it
        if m.get("status") == "complete" and not (path / "predictions.jsonl").is_file():
            m["status"], m["error"] = "incomplete", "predictions.jsonl is missing"
        config = {}
        try:
            config = flatten(yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
                              or {})
        except (OSError, yaml.YAMLError):
            pass
        runs.append(Run(path, m, config))
    label_variants([r for r in runs if not r.on_val])  # each split labelled among its own
    label_variants([r for r in runs if r.on_val])
    return runs


# Shown by value alone in a variant's label: rag (bm25), rag (hybrid, rrf, sentences).
BARE_KEYS = ("retriever.name", "retriever.fusion", "retriever.rerank", "chunker.name")
# Settings that only matter to a strategy that retrieves.
RETRIEVAL_KEYS = ("retriever", "chunker", "embedder")


def short_label(key: str, value: Any) -> str:
    """How a variant label shows one config value ('train.lr_scale=0.3', 'bm25')."""
    name = key.removeprefix("strategy.")
    if key == "model.name_or_path" and isinstance(value, str):
        value = value.rstrip("/").rsplit("/", 1)[-1]
    if key in BARE_KEYS:
        return "reranked by " + str(value) if key == "retriever.rerank" else str(value)
    if isinstance(value, float) and len(repr(value)) > 8:  # a sampled rate: 0.000246
        value = f"{value:.3g}"
    return f"{name}={value}"


def varying_keys(group: list[Run]) -> list[str]:
    """The config keys (flattened) whose values differ between the runs of `group`."""
    # A strategy that does not retrieve is not a different variant because the retriever
    # setting of its sweep changed.
    retrieves = any(r.metrics.get("retrieval_k") is not None for r in group)
    ignored = IGNORED_KEYS + (() if retrieves else RETRIEVAL_KEYS)
    keys = sorted({k for r in group for k in r.config
                   if not any(k == i or k.startswith(i + ".") for i in ignored)})
    # retriever.name says it: leave out the knobs that come with a different retriever
    names = {r.config.get("retriever.name") for r in group}
    if len(names) > 1:
        keys = [k for k in keys if not k.startswith("retriever.") or k in BARE_KEYS
                or all(k in r.config for r in group)]
    return [k for k in keys
            if len({json.dumps(r.config.get(k), default=str) for r in group}) > 1]


def _label_order(key: str) -> tuple[int, str]:
    return (BARE_KEYS.index(key) if key in BARE_KEYS else len(BARE_KEYS), key)


def model_where(r: Run) -> str:
    """'served <model id>' or 'local <model name>': which model answered and where it ran."""
    name = str(r.metrics.get("model") or r.config.get("model.name_or_path") or "?")
    name = name.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf")
    return f"{'served' if r.metrics.get('served') else 'local'} {name}"


def label_variants(runs: list[Run]) -> None:
    """Complete runs of one strategy whose configs differ in anything but the seed (and
    where and how they ran) are separate variants, labelled by the values that differ.
    A run that did not complete is labelled against all runs of its strategy, so that it
    never changes the labels of the runs that did. When the runs span more than one model,
    or a served one, every label names its model and where it ran ('served gpt-4o-mini',
    'local SmolLM2-135M-Instruct.Q4_1') in place of the model's settings."""
    by_model = len({model_where(r) for r in runs}) > 1 or any(r.metrics.get("served") for r in runs)
    by_strategy: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_strategy[r.strategy].append(r)
    for name, group in by_strategy.items():
        done = [r for r in group if r.complete]
        keys_done, keys_all = (sorted(varying_keys(g), key=_label_order) for g in (done, group))
        for r in group:
            keys = keys_done if r.complete else keys_all
            if by_model:
                keys = [k for k in keys if not k.startswith(("model.", "served."))]
            parts = [short_label(k, r.config.get(k)) for k in keys
                     if not (k in BARE_KEYS and r.config.get(k) is None)]
            if by_model:
                parts.append(model_where(r))
            r.variant = f"{name} ({', '.join(parts)})" if parts else name


def summary_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run (what summary.csv holds)."""
    rows = []
    for r in runs:
        m = r.metrics
        row = {"run": str(r.path), "variant": r.variant, "strategy": r.strategy,
               **{c: m.get(c) for c in COLUMNS if c not in ("run", "variant", "strategy")}}
        row["build_s"] = r.build_s
        if row["error"]:
            row["error"] = str(row["error"]).splitlines()[0][:300]
        row.update({col: _get(m, path) for col, path in NESTED})
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + [c for c, _ in NESTED])


def load_runs(paths: list[Path]) -> pd.DataFrame:
    return summary_frame(read_runs(paths))
