"""Every free-form score of a run at once, for the runner: semantic similarity and its
calibrated call, groundedness (strategies that cite), and the LLM judge (judge=<model>).

Per item these add to the scores of harness.scoring.items: semantic_similarity,
semantic_correct, groundedness, unsupported, groundedness_lexical, groundedness_embedding,
judge_correct and judge_score (None where they do not apply). The run's means and how each
was obtained (the threshold and its source, the judge's model and rubric, the evaluation
seconds) come back as metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from harness.answering import AnswerSettings, choice_method
from harness.errors import ConfigError
from harness.models import LanguageModel
from harness.scoring.grounded import SupportSettings, groundedness
from harness.scoring.judge import GRADES, Rubric, judge
from harness.scoring.semantic import (
    Embed,
    calibration_pairs,
    choose_threshold,
    pair_cosines,
    similarities,
)
from harness.system import group_config
from harness.types import Example, Prediction

FREE_FORM_KEYS = ("semantic_similarity", "semantic_correct", "groundedness", "unsupported",
                  "groundedness_lexical", "groundedness_embedding", "judge_correct", "judge_score")


@dataclass(frozen=True)
class ScoringSettings:
    semantic: bool = True  # answer-gold cosine with the run's embedder, and its correct call
    semantic_threshold: Any = "auto"  # auto: calibrated (see harness.scoring.semantic); or a number
    min_calibration_outputs: int = 20  # outputs naming one choice needed to calibrate on the run
    groundedness: bool = True  # strategies that cite: support of the answer by its citations
    support_lexical: float = 0.5  # supported: a passage holds this share of its content words
    support_cosine: float = 0.7  # ... or by a passage sentence this close (cosine)
    judge_batch_size: int = 8  # prompts per judge forward pass

    def __post_init__(self) -> None:
        SupportSettings(self.support_lexical, self.support_cosine)  # checks the values
        if self.min_calibration_outputs < 1 or self.judge_batch_size < 1:
            raise ConfigError("scoring.min_calibration_outputs and scoring.judge_batch_size must be >= 1")


def judge_model_config(spec: Any, search_dirs: Sequence[Path], cache_dir: Any) -> dict[str, Any]:
    """The model config of `judge=<spec>`: a model config name (model/<spec>.yaml in one of
    `search_dirs`), a mapping of model settings (over model/openai.yaml when it gives a
    base_url: a served judge; else over model/hf.yaml), or else a Hugging Face id or local
    path with the settings of model/hf.yaml."""
    def load(name: str) -> dict[str, Any] | None:
        return group_config("model", name, search_dirs, cache_dir)

    if isinstance(spec, Mapping):
        base = load("openai" if spec.get("base_url") else "hf") or {}
        return {**base, **dict(spec)}
    named = load(str(spec))
    if named is not None:
        return named
    return {**(load("hf") or {}), "name_or_path": str(spec)}


def scorer_from_config(cfg: Any, search_dirs: Sequence[Path]) -> FreeFormScorer:
    """The scorer of a run's config (scoring, judge, judge_rubric, embedder, model's cache)."""
    from harness.models import get_lm
    from harness.retrieval import get_embedder

    settings = ScoringSettings(**OmegaConf.to_container(cfg.scoring, resolve=True))
    emb_cfg = OmegaConf.to_container(cfg.embedder, resolve=True)
    stored = emb_cfg.pop("semantic_threshold", None)
    note = str(emb_cfg.pop("semantic_threshold_note", "") or "")
    judge_lm = rubric = None
    spec = cfg.get("judge")
    if spec is not None:
        spec = OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else spec
        rubric = Rubric.from_config(OmegaConf.to_container(cfg.judge_rubric, resolve=True))
        judge_lm = get_lm(judge_model_config(spec, search_dirs, cfg.get("cache_dir")))
    def embed(texts: Sequence[str]) -> np.ndarray:  # built on first use, shared per process
        return get_embedder(emb_cfg).embed(texts)

    answer = AnswerSettings(**OmegaConf.to_container(cfg.answer, resolve=True))
    return FreeFormScorer(settings, embed, stored_threshold=None if stored is None else float(stored),
                          stored_note=note, judge_lm=judge_lm, rubric=rubric,
                          progress=bool(cfg.get("progress")), answer=answer)


def _memoized(embed: Embed) -> Embed:
    """`embed` that computes each distinct text once and answers repeats from memory."""
    known: dict[str, np.ndarray] = {}

    def cached(texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            known.update(zip(new, embed(new)))
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    return cached


class FreeFormScorer:
    def __init__(self, settings: ScoringSettings, embed: Callable[[Sequence[str]], np.ndarray], *,
                 stored_threshold: float | None = None, stored_note: str = "",
                 judge_lm: LanguageModel | None = None, rubric: Rubric | None = None,
                 progress: bool = False, answer: AnswerSettings | None = None) -> None:
        self.settings, self.embed = settings, embed
        self.answer = answer or AnswerSettings()
        self.stored_threshold, self.stored_note = stored_threshold, stored_note
        self.judge_lm, self.rubric, self.progress = judge_lm, rubric, progress

    def score(self, examples: Sequence[Example], preds: Sequence[Prediction],
              items: list[dict[str, Any]], *, cites: bool,
              doc_text: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Adds the free-form scores to `items` (in place); returns the run metrics and per
        item details (the judge's grade and label probabilities)."""
        outputs = [p.output for p in preds]
        embed = _memoized(self.embed)  # answers, golds, choices, sentences: each embedded once
        details: list[dict[str, Any]] = [{} for _ in preds]
        metrics: dict[str, Any] = {"eval_s": {}}
        for it in items:
            it.update(dict.fromkeys(FREE_FORM_KEYS))
        generated = any(o is not None for o in outputs)
        if self.settings.semantic and generated:
            t0 = time.perf_counter()
            metrics.update(self._semantic(embed, examples, outputs, items))
            metrics["eval_s"]["semantic"] = time.perf_counter() - t0
            for d in details:
                d["semantic_threshold"] = metrics["semantic_threshold"]
        if self.settings.groundedness and cites and generated:
            t0 = time.perf_counter()
            passages = [[c.text or doc_text.get(c.source_id, "") for c in p.citations] for p in preds]
            passages = [[t for t in ps if t.strip()] for ps in passages]
            for it, g in zip(items, groundedness(outputs, passages, embed, SupportSettings(
                    self.settings.support_lexical, self.settings.support_cosine))):
                if g:
                    it.update(g)
            metrics["eval_s"]["groundedness"] = time.perf_counter() - t0
        if self.judge_lm is not None and self.rubric is not None and generated:
            t0 = time.perf_counter()
            grades = judge(self.judge_lm, self.rubric, examples, outputs,
                           batch_size=self.settings.judge_batch_size, progress=self.progress,
                           answer=self.answer)
            method, why = choice_method(self.judge_lm, self.answer.choice_scoring)
            for it, d, g in zip(items, details, grades):
                if g is not None:
                    s = g.scores()
                    it.update(judge_correct=s["judge_correct"], judge_score=s["judge_score"])
                    d.update(judge_grade=s["judge_grade"], judge_probs=s["judge_probs"])
            asked = [g for g in grades if g is not None]
            metrics["judge"] = {
                "model": self.judge_lm.name, "where": self.judge_lm.where,
                "scoring_method": method, "scoring_method_reason": why,
                "rubric_version": self.rubric.version,
                "rubric_hash": self.rubric.hash,
                "grades": {k: sum(g.grade == k for g in asked) for k in GRADES},
                # computed seconds (also when the prediction cache supplied the grades)
                "seconds": sum(g.seconds for g in asked),
            }
            metrics["eval_s"]["judge"] = time.perf_counter() - t0
        return metrics, details

    def _semantic(self, embed: Embed, examples: Sequence[Example], outputs: Sequence[str | None],
                  items: list[dict[str, Any]]) -> dict[str, Any]:
        sims = similarities(embed, outputs, [e.answers for e in examples])
        pairs = calibration_pairs(examples, outputs)
        used = sum(1 for _, _, m in pairs if m)
        th = choose_threshold(self.settings.semantic_threshold, pair_cosines(embed, pairs),
                              used, self.settings.min_calibration_outputs, self.stored_threshold,
                              self.stored_note)
        for it, s in zip(items, sims):
            it["semantic_similarity"] = None if s is None else round(s, 5)
            if s is not None and th.value is not None:
                it["semantic_correct"] = float(s >= th.value)
        return {"semantic_threshold": th.value, "semantic_calibration": th.to_dict()}
