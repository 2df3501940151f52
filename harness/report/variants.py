"""Variants: the complete runs of one strategy configuration, seeds pooled, with their
per-item outcomes and what the strategy is (trains, cites, retrieves), read from the
runs' metrics, never from the strategy's name. Also the paired comparisons between them."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.report.power import EQUIVALENCE, with_power
from harness.run_folders import Run
from harness.stats import (
    ALPHA,
    Estimate,
    PairedTest,
    bootstrap_ci,
    cluster_ids,
    holm,
    paired_test,
    prob_superior,
)

CLUSTER_BY = "source"  # task.cluster_by's default: an item's first source document

Pairs = list[tuple[str, str, PairedTest, float]]  # a, b, test, Holm-adjusted p


@dataclass
class Variant:
    name: str
    strategy: str
    runs: list[Run]
    item_ids: list[str]
    outcomes: np.ndarray  # seeds x items (primary score per item)
    latency: np.ndarray  # every item of every seed: seconds
    retrieval_latency: np.ndarray
    estimate: Estimate
    cluster_labels: list | None = None  # per item of item_ids: what it was sampled with
    cluster_by: str = CLUSTER_BY

    def clusters_on(self, ids: list[str]) -> np.ndarray | None:
        """Per item of `ids`, its cluster's index (None: the items are independent)."""
        if self.cluster_labels is None:
            return None
        label = dict(zip(self.item_ids, self.cluster_labels))
        return cluster_ids([label[i] for i in ids])

    def values(self, key: str, path: tuple[str, ...] = ()) -> list[Any]:
        """The value at metrics[path...][key] of every run that has one."""
        out = []
        for r in self.runs:
            v: Any = r.metrics
            for k in path + (key,):
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                out.append(v)
        return out

    def mean(self, key: str, path: tuple[str, ...] = ()) -> float:
        vals = [float(v) for v in self.values(key, path)
                if isinstance(v, int | float) and not isinstance(v, bool)]
        return float(np.mean(vals)) if vals else math.nan

    def outcomes_on(self, ids: list[str]) -> np.ndarray:
        """seeds x `ids`: the outcomes on those items (all of them among item_ids)."""
        index = {i: k for k, i in enumerate(self.item_ids)}
        return self.outcomes[:, [index[i] for i in ids]]

    @property
    def seeds(self) -> list[int]:
        return [int(r.metrics.get("seed", 0)) for r in self.runs]

    @property
    def tuned(self) -> bool:
        """Its strategy trains (changes the model's weights). Runs written before the
        strategy said so: it reported trainable parameters."""
        said = self.values("trains")
        if said:
            return any(said)
        return any(self.values("trainable_params", ("fit",)))

    @property
    def can_cite(self) -> bool:
        return any(self.values("can_cite"))

    @property
    def retrieves(self) -> bool:
        """Its strategy retrieves passages (it has a retrieval depth, or recall@k exists)."""
        return bool(self.values("retrieval_k") or self.values("recall_at_k"))

    @property
    def measured_forgetting(self) -> bool:
        """Its fit measured forgetting on the control set (fit.forgetting)."""
        return any(self.values("forgetting", ("fit",)))

    def forgetting(self, key: str) -> float:
        """The mean over seeds of one forgetting measure (nan when not measured)."""
        return self.mean(key, ("fit", "forgetting"))


def kind_order(v: Variant) -> tuple[int, int]:
    """Untrained before trained, without retrieval before with: prompt-like, rag-like,
    tuned, tuned with retrieval."""
    return int(v.tuned), int(v.retrieves)


def make_variants(runs: list[Run], metric: str | None = None, *,
                  on_val: bool = False, cluster: str | None = None) -> list[Variant]:
    """Variants of the complete runs on the test split, scored by `metric` (None: each run's
    primary metric). Validation runs chose something (harness.report.selection, .tuning);
    on_val=True makes their variants instead (the item explorer's validation view)."""
    by_name: dict[str, list[Run]] = {}
    for r in runs:
        if r.complete and r.on_val == on_val:
            by_name.setdefault(r.variant, []).append(r)
    variants = []
    for name, group in by_name.items():
        group.sort(key=lambda r: int(r.metrics.get("seed", 0)))
        frames = [r.items(metric) for r in group]
        ids = sorted(set.intersection(*(set(f.id) for f in frames)))
        mats = [f.set_index("id").loc[ids, "score"].astype(float).to_numpy() for f in frames]
        outcomes = np.vstack(mats) if ids else np.zeros((len(group), 0))
        keep = ~np.isnan(outcomes).any(axis=0)  # items without a primary score (no choices
        outcomes, ids = outcomes[:, keep], [i for i, k in zip(ids, keep) if k]  # and no text)
        lat = np.concatenate([f.latency_s.to_numpy(float) for f in frames])
        rlat = np.concatenate([f.retrieval_latency_s.fillna(0).to_numpy(float) for f in frames])
        labels = cluster_labels(group[0], ids, cluster)
        est = bootstrap_ci(outcomes, clusters=cluster_ids(labels)) if outcomes.size \
            else Estimate(math.nan, math.nan, math.nan, 0, len(group))
        variants.append(Variant(name, group[0].strategy, group, ids, outcomes, lat, rlat, est,
                                labels, cluster_by(group[0], cluster)))
    variants.sort(key=lambda v: (*kind_order(v), v.name))
    return variants


def cluster_by(run: Run, override: str | None = None) -> str:
    """What the run's items were sampled with (task.cluster_by, or the report's
    report.cluster_by): `source` (the first source document), `none`, or a field of the
    examples file."""
    return str(override or run.config.get("task.cluster_by") or CLUSTER_BY)


def cluster_labels(run: Run, ids: list[str], override: str | None = None) -> list | None:
    """Per item, its cluster: its first source document (task.cluster_by=source), a field of
    the examples file (task.cluster_by=<field>), or none; an item without one is its own."""
    by = cluster_by(run, override)
    if by == "none":
        return None
    rows = {p["id"]: p for p in run.predictions()}
    out = []
    for i in ids:
        p = rows.get(i) or {}
        value = (p.get("source_ids") or [None])[0] if by == "source" \
            else (p.get("meta") or {}).get(by)
        out.append(("cluster", str(value)) if value is not None else ("item", i))
    return out


def compare_pairs(variants: list[Variant], margin: float = EQUIVALENCE) -> Pairs:
    """Every pair of variants on the items both answered, with Holm-adjusted p-values, the
    smallest difference each could detect, and whether it shows them equivalent within
    +-margin (harness.report.power)."""
    tests = []
    for a, b in itertools.combinations(variants, 2):
        shared = sorted(set(a.item_ids) & set(b.item_ids))
        if not shared:
            continue
        oa, ob, clusters = a.outcomes_on(shared), b.outcomes_on(shared), a.clusters_on(shared)
        t = paired_test(oa, ob, clusters=clusters)
        sup = prob_superior(oa, ob, clusters=clusters, n_boot=1000)
        t = dataclasses.replace(t, superior=sup.p, superior_low=sup.low, superior_high=sup.high)
        tests.append((a.name, b.name, with_power(t, margin)))
    adjusted = holm([t.p_value for _, _, t in tests]) if tests else []
    return [(a, b, t, p) for (a, b, t), p in zip(tests, adjusted)]


def tied_with(name: str, pairs: Pairs) -> list[tuple[str, float]]:
    """Variants not significantly different from `name` (Holm-adjusted p >= ALPHA)."""
    out = []
    for a, b, _, p in pairs:
        if name in (a, b) and p >= ALPHA:
            out.append((b if a == name else a, p))
    return out
