"""Parity: does what a team will serve score what was measured? The export is scored on the
run's own test items through the harness's own scoring, and compared item by item with the
run's predictions.jsonl: the share of items with the same choice (or the same retrieved
documents), the mean gap of the choice log-probabilities, both accuracies and McNemar's
exact test on them, and the items that flipped. The verdict: the export does not reproduce
the run when more than 2% of the choices the run was sure of changed (its top two choices
at least 0.5 nats apart; nearer ties follow the arithmetic's own noise, bfloat16's ~0.1
nats, and are reported, not failed), when the accuracies differ significantly, or when a
retrieval export retrieves other documents.

    in process   the exported folder (merged, adapter or full) loaded by transformers, scored
                 as the run was (loglik or letter), at the run's dtype
    GGUF         the file served by llama.cpp's server and scored by letter, against the
                 exported folder scored by letter in process: llama.cpp's echoed prompt
                 log-probs are wrong (FINDINGS), so a served GGUF cannot be scored by
                 log-likelihood; the two links (run -> folder, folder -> GGUF) chain
    retrieval    RagBundle (serve.py) answering the test questions: the same documents
                 retrieved, in the same order

A tuned export must also differ from its base model where the run did (the adapter is
active): on the items where the run and the base model chose differently, the export must
choose as the run did."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from harness.export.source import Source
from harness.models.contract import LETTER_FLOOR
from harness.stats import mcnemar_exact

FLIP_TOLERANCE = 0.02  # more than this share of sure choices changed: the export does not reproduce
# A choice the run was sure of: its top two choices this far apart (log-prob). Below it, the
# run's own arithmetic decides (bfloat16 moves a choice's log-prob by ~0.1 nats), and a
# changed choice there is reported but does not fail the check.
SURE_NATS = 0.5
ALPHA = 0.05
ACTIVE_SHARE = 0.5  # on the items where run and base differ, the export must side with the run


@dataclass
class Parity:
    link: str  # what was compared with what
    n_items: int
    same_choice: float | None  # share of items with the same choice (or retrieved documents)
    logprob_gap_mean: float | None  # mean |log p(choice) run - export| over every choice
    accuracy_run: float | None
    accuracy_export: float | None
    p_value: float | None  # McNemar's exact test on the two accuracies
    flipped: list[str] = field(default_factory=list)  # item ids whose choice changed
    sure_items: int = 0  # items the run was sure of (top two choices >= SURE_NATS apart)
    same_choice_sure: float | None = None  # share of those with the same choice
    same_retrieved: float | None = None  # share of items with the same documents, same order
    reproduces: bool = True
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def rows(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def _correct(r: dict) -> float | None:
    return (r.get("scores") or {}).get("choice_correct")


def compare(a: dict[str, dict], b: dict[str, dict], link: str, *, retrieval: bool = False,
            tolerance: float = FLIP_TOLERANCE) -> Parity:
    """Item by item on the ids both answered: a (what was measured) against b (the export)."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return Parity(link, 0, None, None, None, None, None, reproduces=False,
                      why="no item in common")
    chosen = [i for i in ids if a[i].get("choice") is not None]
    same = (sum(a[i]["choice"] == b[i].get("choice") for i in chosen) / len(chosen)) if chosen else None
    gaps = [abs(x - y) for i in chosen
            for x, y in zip(a[i].get("choice_logprobs") or [], b[i].get("choice_logprobs") or [])
            if x > LETTER_FLOOR and y > LETTER_FLOOR]  # a letter outside the top k: no value
    scored = [i for i in ids if _correct(a[i]) is not None and _correct(b[i]) is not None]
    acc_a = sum(_correct(a[i]) for i in scored) / len(scored) if scored else None
    acc_b = sum(_correct(b[i]) for i in scored) / len(scored) if scored else None
    p = mcnemar_exact([_correct(a[i]) for i in scored], [_correct(b[i]) for i in scored])[0] \
        if scored else None
    flipped = [i for i in chosen if a[i]["choice"] != b[i].get("choice")]
    sure = [i for i in chosen if _margin(a[i].get("choice_logprobs") or []) >= SURE_NATS]
    out = Parity(link, len(ids), same, sum(gaps) / len(gaps) if gaps else None, acc_a, acc_b, p,
                 flipped, len(sure),
                 (sum(a[i]["choice"] == b[i].get("choice") for i in sure) / len(sure))
                 if sure else None)
    if retrieval:
        docs = lambda r: [c.get("source_id") for c in r.get("citations") or r.get("retrieved") or []]  # noqa: E731
        out.same_retrieved = sum(docs(a[i]) == docs(b[i]) for i in ids) / len(ids)
    problems = []
    if out.same_choice_sure is not None and 1 - out.same_choice_sure > tolerance:
        problems.append(f"{sum(i in sure for i in flipped)} of the {len(sure)} choices the run "
                        f"was sure of changed (more than {tolerance:.0%})")
    if p is not None and p < ALPHA:
        problems.append(f"the accuracies differ significantly (McNemar p = {p:.3g})")
    if out.same_retrieved is not None and out.same_retrieved < 1:
        problems.append(f"the retrieved documents differ on {1 - out.same_retrieved:.1%} of items")
    out.reproduces, out.why = not problems, "; ".join(problems)
    return out


def _margin(logprobs: list[float]) -> float:
    """How far apart the top two choices are; 0 when it is unknown (a letter outside the
    top tokens read has no log-prob, only a bound)."""
    top = sorted(logprobs, reverse=True)
    if len(top) < 2 or top[1] <= LETTER_FLOOR:
        return 0.0
    return top[0] - top[1]


def adapter_active(run: dict[str, dict], export: dict[str, dict], base: dict[str, dict]) -> dict:
    """On the items where the run and its base model chose differently, how often the export
    chose as the run did; an export that answers like the base there lost its adapter."""
    ids = [i for i in sorted(set(run) & set(export) & set(base))
           if run[i].get("choice") is not None and run[i]["choice"] != base[i].get("choice")]
    if not ids:
        return {"items_where_tuning_changed_the_choice": 0, "export_sides_with_run": None,
                "active": None, "why": "the run chose as its base model on every item: nothing "
                                       "tells an active adapter from an inactive one"}
    with_run = sum(export[i].get("choice") == run[i]["choice"] for i in ids) / len(ids)
    return {"items_where_tuning_changed_the_choice": len(ids), "export_sides_with_run": with_run,
            "active": with_run > ACTIVE_SHARE,
            "why": "" if with_run > ACTIVE_SHARE else
            "the export answers like the base model where tuning changed the answer: the "
            "adapter is not active (lm-eval #2432's failure)"}


PROMPT_STRATEGY = {"_target_": "strategies.prompt.PromptStrategy", "name": "prompt", "k_shot": 0,
                   "shot_selection": "random"}


def scoring_config(src: Source, model: dict[str, Any], *, items: int | None = None,
                   choice_scoring: str | None = None, letter_top_k: int | None = None,
                   cached: bool = False) -> DictConfig:
    """The run's config answering with `model`: the tuned half's prompt strategy (a hybrid:
    rag over the same retrieval settings), the same split and items, no training."""
    cfg = copy.deepcopy(src.config)
    with open_dict(cfg):
        cfg.model = OmegaConf.create(model)
        strategy = cfg.strategy
        if "adapter" in strategy or "train" in strategy:
            k = (strategy.get("retrieval") or {}).get("k")
            cfg.strategy = OmegaConf.create(
                {"_target_": "strategies.rag.RAGStrategy", "name": "rag", "k": int(k)} if k
                else PROMPT_STRATEGY)
        cfg.seen_eval_limit = 0
        cfg.progress = False
        cfg.cost.model_time = False  # what it costs is the run's; parity is about its answers
        cfg.prediction_cache = cached
        cfg.memory = OmegaConf.merge(cfg.get("memory") or {}, {"check": False})
        cfg.tracking = OmegaConf.create({"backend": "none"})
        for key in ("phase", "study", "trial"):  # a search's run: scored as a plain run
            cfg.search.pop(key, None) if "search" in cfg else None
        if "freshness" in cfg:
            cfg.freshness = OmegaConf.merge(cfg.freshness, {"enabled": False})
        if items:
            cfg.limit = int(items)
        if choice_scoring:
            cfg.answer.choice_scoring = choice_scoring
        if letter_top_k:
            cfg.answer.letter_top_k = int(letter_top_k)
    return cfg


def score(cfg: DictConfig, folder: Path) -> dict[str, dict]:
    """Run the harness with `cfg` into `folder`; its predictions by id."""
    from harness.run.runner import run

    run(cfg, folder)
    return rows(folder / "predictions.jsonl")
