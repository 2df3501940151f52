"""The items behind the numbers: every question joined across the report's variants, with
each variant's answers, the passages it retrieved and its scores. Read from the runs'
predictions.jsonl alone.

    item_frame(views)    one row per item, variant and seed: items.parquet, for pandas
    explorer_data(...)   the JSON the report's Items section (the explorer) is drawn from

A view is a set of columns on one split: the test split's variants (a variant's seeds fold
into one column), and in a search (experiment=fair) the trials on the validation split, one
column each, never mixed with the test items. A cell is *right* when the variant's primary
score on the item is at least 0.5, averaged over its seeds: for one seed of a yes/no metric
that is the outcome McNemar's test counts, so the explorer's "A right, B wrong" counts are the
paired table's discordant pairs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from harness.report.variants import Variant
from harness.run_files import atomic_write_text

RIGHT_AT = 0.5  # a score at or above this (seed-averaged) is "right"
INLINE_MB = 25.0  # above this, the items go to a sibling items.html (report.items_inline_mb)


@dataclass
class View:
    """Columns on one split: `test` (the report's variants) or `val` (a search's trials)."""
    key: str
    title: str
    columns: list[Variant]
    labels: list[str]  # each column's name as the explorer shows it (the variant's name)


def fragment(*parts: tuple[str, str] | str) -> str:
    """The explorer's link for a view: '#items/right=rag/wrong=hybrid'. Values are encoded
    as JavaScript's encodeURIComponent does, so the page reads back what it was given."""
    out = []
    for p in parts:
        out.append(p if isinstance(p, str)
                   else f"{p[0]}={quote(str(p[1]), safe=ENCODE_SAFE)}")
    return "#items/" + "/".join(out)


ENCODE_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves as it is


def views(variants: list[Variant], trials: list[Variant]) -> list[View]:
    out = [View("test", "test split", variants, [v.name for v in variants])]
    if trials:
        trials = sorted(trials, key=lambda v: (v.strategy, int(v.runs[0].search("trial") or 0),
                                               v.name))
        out.append(View("val", "validation split (the search's trials)", trials,
                        [trial_label(v) for v in trials]))
    return out


def trial_label(v: Variant) -> str:
    """A validation column: 'trial 3: rag (k=5, ...)' for a search's trial, else its name."""
    trial = v.runs[0].search("trial")
    return f"trial {trial}: {v.name}" if trial is not None else v.name


def _right(v: Variant) -> dict[str, tuple[int, int, bool]]:
    """Per item id: (seeds right, seeds, right by the seed average)."""
    counts = (v.outcomes >= RIGHT_AT).sum(axis=0).tolist()
    ok = (v.outcomes.mean(axis=0) >= RIGHT_AT).tolist() if v.outcomes.size else []
    n = v.outcomes.shape[0]
    return {i: (int(c), n, bool(o)) for i, c, o in zip(v.item_ids, counts, ok)}


def agreement(view: View) -> dict[str, int]:
    """How many of the view's items every variant got right, every one wrong, and on how many
    they disagree (among the variants that answered each)."""
    rights = [_right(v) for v in view.columns]
    ids = {i for v in view.columns for i in v.item_ids}
    out = {"items": len(ids), "all_right": 0, "all_wrong": 0, "disagree": 0}
    for i in ids:
        oks = [r[i][2] for r in rights if i in r]
        key = "all_right" if all(oks) else "all_wrong" if not any(oks) else "disagree"
        out[key] += 1
    return out


def summary_line(view: View) -> str:
    """The Markdown report's Items section: what the explorer in report.html would show."""
    n = agreement(view)
    return (f"{n['items']} question(s) on the {view.title}, {len(view.columns)} variant(s): "
            f"all right on {n['all_right']}, all wrong on {n['all_wrong']}, the variants "
            f"disagree on {n['disagree']}. Each question's answers, retrieved passages and "
            "scores: the Items section of report.html, and items.parquet (one row per item, "
            "variant and seed).")


def _retrieved(row: dict) -> list[dict]:
    """The passages that reached the prompt, by document, in rank order (the citations)."""
    return [c for c in row.get("citations") or [] if isinstance(c, dict)]


def item_frame(all_views: list[View]) -> pd.DataFrame:
    """One row per item, variant and seed (items.parquet): id, split, variant, strategy,
    seed, correct (right by the primary score), score (the primary score), choice,
    gold_choice, output, question, gold, source_ids, retrieved_ids (documents, in rank
    order), source_in_train, run, and one `score.<name>` column per per-item score."""
    rows = []
    for view in all_views:
        for v, label in zip(view.columns, view.labels):
            primary = {(s, i): float(v.outcomes[s, k]) for s in range(len(v.runs))
                       for k, i in enumerate(v.item_ids)}
            for s, run in enumerate(v.runs):
                for p in run.predictions():
                    score = primary.get((s, p["id"]), math.nan)
                    rows.append({
                        "id": p["id"], "split": view.key, "variant": label,
                        "strategy": v.strategy, "seed": int(run.metrics.get("seed", 0)),
                        "correct": None if math.isnan(score) else bool(score >= RIGHT_AT),
                        "score": score, "choice": p.get("choice"),
                        "gold_choice": p.get("gold_choice"), "output": p.get("output"),
                        "question": p.get("question"), "gold": list(p.get("gold") or []),
                        "source_ids": list(p.get("source_ids") or []),
                        "retrieved_ids": [c.get("source_id") for c in _retrieved(p)],
                        "source_in_train": p.get("source_in_train"), "run": str(run.path),
                        **{f"score.{k}": _num(x) for k, x in (p.get("scores") or {}).items()},
                    })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for col in ("choice", "gold_choice", "seed"):
        frame[col] = frame[col].astype("Int64")
    for col in ("correct", "source_in_train"):
        frame[col] = frame[col].astype("boolean")
    for col in [c for c in frame.columns if c.startswith("score.")]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in ("id", "split", "variant", "strategy", "output", "question", "run"):
        frame[col] = frame[col].astype("string")
    return frame


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    return float(x) if isinstance(x, int | float) else None


def write_item_frame(frame: pd.DataFrame, out: Path) -> Path | None:
    """items.parquet under `out`, written atomically (None: no items)."""
    if frame.empty:
        return None
    tmp, path = out / ".items.parquet.tmp", out / "items.parquet"
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


class _Passages:
    """Passages stored once: (document, text) -> index into one list."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str], int] = {}
        self.rows: list[list[str]] = []

    def ref(self, doc: str, text: str) -> int:
        key = (doc, text)
        if key not in self.index:
            self.index[key] = len(self.rows)
            self.rows.append([doc, text])
        return self.index[key]


def _cell(v: Variant, by_seed: list[dict[str, dict]], item: str, right: tuple[int, int, bool],
          passages: _Passages) -> dict:
    """One variant's answers to one item: right count, seeds, and per seed what it said."""
    seeds = []
    for run, rows in zip(v.runs, by_seed):
        p = rows.get(item)
        if p is None:
            continue
        s: dict[str, Any] = {"seed": int(run.metrics.get("seed", 0))}
        if p.get("output") is not None:
            s["o"] = p["output"]
        if p.get("choice") is not None:
            s["c"] = p["choice"]
        if p.get("choice_logprobs"):
            s["lp"] = p["choice_logprobs"]
        scores = {k: x for k, x in (p.get("scores") or {}).items() if x is not None}
        if scores:
            s["sc"] = scores
        cited = _retrieved(p)
        if cited:
            s["p"] = [[passages.ref(str(c.get("source_id")), str(c.get("text") or "")),
                       c.get("score")] for c in cited]
        seeds.append(s)
    n_right, n, ok = right
    return {"r": n_right, "n": n, "ok": ok, "s": seeds}


def _view_data(view: View, passages: _Passages) -> dict:
    rows_of = [[{p["id"]: p for p in run.predictions()} for run in v.runs] for v in view.columns]
    rights = [_right(v) for v in view.columns]
    order: dict[str, None] = {}
    for v in view.columns:
        order.update(dict.fromkeys(v.item_ids))
    items = []
    for i in order:
        first = next(rows[i] for by_seed in rows_of for rows in by_seed if i in rows)
        item: dict[str, Any] = {"id": i, "q": first.get("question", ""),
                                "gold": first.get("gold") or [], "src": first.get("source_ids") or []}
        if first.get("choices"):
            item["ch"], item["gc"] = first["choices"], first.get("gold_choice")
        if first.get("source_in_train") is not None:
            item["seen"] = bool(first["source_in_train"])
        if first.get("split"):
            item["split"] = first["split"]
        if first.get("meta"):
            item["meta"] = first["meta"]
        item["v"] = [_cell(v, by_seed, i, right[i], passages) if i in right else None
                     for v, by_seed, right in zip(view.columns, rows_of, rights)]
        items.append(item)
    return {"key": view.key, "title": view.title, "items": items,
            "columns": [{"name": label, "strategy": v.strategy, "retrieves": v.retrieves,
                         "cites": v.can_cite, "tuned": v.tuned, "seeds": v.seeds}
                        for v, label in zip(view.columns, view.labels)]}


def explorer_data(all_views: list[View], *, metric: str, compare: list[tuple[str, str]] = ()
                  ) -> dict:
    """Everything the explorer shows, passages once. `compare`: (old column, new column)
    pairs of a comparison of two sweeps (the 'changed' filter)."""
    passages = _Passages()
    data = [_view_data(v, passages) for v in all_views if v.columns]
    return {"metric": metric, "right_at": RIGHT_AT, "views": data, "passages": passages.rows,
            "compare": [list(p) for p in compare]}


def to_json(data: dict) -> str:
    """The explorer's data as JSON safe inside a <script> element (no '</', no NaN)."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, np.generic):
        return _finite(x.item())
    return x


def write_standalone(html: str, out: Path) -> Path:
    path = out / "items.html"
    atomic_write_text(path, html)
    return path
