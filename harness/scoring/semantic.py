"""Semantic answer similarity: the cosine between an answer and its closest gold answer,
with the run's embedder, and a correct/incorrect call at a threshold that is calibrated,
not chosen.

Calibration. On items with answer choices, an output that names exactly one choice (its
words contain that choice's words, as `contains` checks) gives one matching pair (the
output and the choice it names) and non-matching pairs (the output and every other
choice). The threshold is the cosine that best separates the two kinds of pair (highest
balanced accuracy; the middle of the best range), and the ROC AUC says how well any
threshold can. So the threshold is set on the run's own outputs in the style the
strategy writes them (a bare "1987" or a sentence around it), against same-kind wrong
answers, which are the hard cases. With fewer usable outputs than
`scoring.min_calibration_outputs` (or a task without choices), the embedder's stored
threshold is used (`embedder.semantic_threshold`, calibrated once on tasks with choices;
see docs/scoring.md, "Scoring free-form answers"). The run records the threshold and where it came
from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from harness.errors import ConfigError
from harness.scoring.lexical import contains
from harness.types import Example

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> L2-normalised rows


@dataclass(frozen=True)
class Threshold:
    value: float | None  # None: no threshold known, semantic_correct is not scored
    # "calibrated on this run" | "embedder.semantic_threshold" | "scoring.semantic_threshold" | "none"
    source: str
    detail: str  # one line a reader can follow
    auc: float | None = None  # how well cosine separates matching from non-matching pairs
    balanced_accuracy: float | None = None  # of the call at `value` on those pairs
    outputs_used: int = 0  # outputs that named exactly one choice
    n_matching: int = 0
    n_other: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def best_threshold(matching: Sequence[float], other: Sequence[float]) -> tuple[float, float, float]:
    """(threshold, balanced accuracy, ROC AUC) separating `matching` cosines (called
    correct: >= threshold) from `other` ones. Of the thresholds with the best balanced
    accuracy, the middle one."""
    pos, neg = np.asarray(matching, float), np.asarray(other, float)
    if not len(pos) or not len(neg):
        raise ValueError("calibration needs matching and non-matching pairs")
    values = np.unique(np.concatenate([pos, neg]))
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    pos_s, neg_s = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(pos_s, cuts, side="left") / len(pos)  # share of pos >= cut
    tnr = np.searchsorted(neg_s, cuts, side="left") / len(neg)  # share of neg < cut
    bal = (tpr + tnr) / 2
    best = np.flatnonzero(np.isclose(bal, bal.max()))
    cut = float((cuts[best[0]] + cuts[best[-1]]) / 2)
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    from sklearn.metrics import roc_auc_score  # sklearn is slow to import: only when needed

    auc = float(roc_auc_score(labels, np.r_[pos, neg]))
    return cut, float(bal.max()), auc


def calibration_pairs(examples: Sequence[Example],
                      outputs: Sequence[str | None]) -> list[tuple[str, str, bool]]:
    """(output, choice, the output names this choice) for every output on an item with
    choices that names exactly one of them."""
    pairs = []
    for ex, out in zip(examples, outputs):
        if not ex.choices or not out:
            continue
        named = [j for j, c in enumerate(ex.choices) if contains(out, [c])]
        if len(named) == 1:
            pairs.extend((out, c, j == named[0]) for j, c in enumerate(ex.choices))
    return pairs


def choose_threshold(setting: str | float | None, pairs_cos: Sequence[tuple[float, bool]],
                     outputs_used: int, min_outputs: int, stored: float | None,
                     stored_note: str = "") -> Threshold:
    """The threshold a run uses: a number the user set; else calibrated on this run's pairs
    when enough outputs named one choice; else the embedder's stored one; else none."""
    if setting not in (None, "auto"):
        try:
            value = float(setting)
        except (TypeError, ValueError):
            raise ConfigError(f"scoring.semantic_threshold must be 'auto' or a number in "
                              f"[-1, 1], got {setting!r}") from None
        if not -1 <= value <= 1:
            raise ConfigError(f"scoring.semantic_threshold must be in [-1, 1], got {value}")
        return Threshold(value, "scoring.semantic_threshold", "set in the config")
    pos = [c for c, m in pairs_cos if m]
    neg = [c for c, m in pairs_cos if not m]
    if outputs_used >= min_outputs and pos and neg:
        cut, bal, auc = best_threshold(pos, neg)
        return Threshold(round(cut, 4), "calibrated on this run",
                         f"{outputs_used} outputs that name one choice: {len(pos)} matching and "
                         f"{len(neg)} other pairs, AUC {auc:.3f}", auc=auc, balanced_accuracy=bal,
                         outputs_used=outputs_used, n_matching=len(pos), n_other=len(neg))
    why = (f"{outputs_used} outputs name exactly one choice (calibration needs {min_outputs})"
           if pairs_cos else "no output names exactly one choice (or the task has none)")
    if stored is not None:
        return Threshold(float(stored), "embedder.semantic_threshold",
                         f"{why}; the embedder's stored threshold{': ' + stored_note if stored_note else ''}",
                         outputs_used=outputs_used)
    return Threshold(None, "none", f"{why}, and the embedder has no stored semantic_threshold: "
                                   "set embedder.semantic_threshold or scoring.semantic_threshold",
                     outputs_used=outputs_used)


def similarities(embed: Embed, outputs: Sequence[str | None],
                 golds: Sequence[Sequence[str]]) -> list[float | None]:
    """Per item: the cosine between the output and its closest gold answer; None without
    an output (generation off), 0 for an empty one."""
    texts = list(dict.fromkeys([o for o in outputs if o] + [g for gs in golds for g in gs]))
    vec = dict(zip(texts, embed(texts))) if texts else {}
    sims: list[float | None] = []
    for out, gs in zip(outputs, golds):
        if out is None:
            sims.append(None)
        elif not out.strip() or not gs:
            sims.append(0.0)
        else:
            sims.append(max(float(vec[out] @ vec[g]) for g in gs))
    return sims


def pair_cosines(embed: Embed, pairs: Sequence[tuple[str, str, bool]]) -> list[tuple[float, bool]]:
    texts = list(dict.fromkeys(t for o, c, _ in pairs for t in (o, c)))
    vec = dict(zip(texts, embed(texts))) if texts else {}
    return [(float(vec[o] @ vec[c]), m) for o, c, m in pairs]
