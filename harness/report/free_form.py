"""Free-form answers in the report: what each variant scores on the free-form metrics, and
how far each metric can be trusted — its agreement with the choice-based score on items
that have choices, and with human labels when a labels file is given (labels.jsonl: one
{"id", "strategy", "correct"} per line; strategy is a strategy name or a variant label).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.report import fmt as f
from harness.report.ppi import ppi_mean
from harness.report.tables import Table
from harness.report.variants import Variant
from harness.run_record import Metric
from harness.scoring.agreement import LOW_KAPPA, agreement, trust_warning
from harness.stats import bootstrap_ci

# The yes/no free-form calls whose agreement is measured, and how the report names them.
CALLS = {"exact_match": "SQuAD exact match", "contains": "contains",
         "semantic_correct": "semantic call", "judge_correct": "judge: correct"}


UNCHECKED = "not checked: no choices, no labels"


class LabelsError(UserError):
    """A labels file the report cannot use; the message names the file, line and field."""


@dataclass(frozen=True)
class Label:
    id: str
    variant: str
    correct: bool


def read_labels(path: Path, variants: list[Variant]) -> list[Label]:
    """Human labels, each matched to the variant it judges; every bad row is an error that
    names the file, the line and the field."""
    by_name = {v.name: v for v in variants}
    ids = {v.name: {p["id"] for r in v.runs for p in r.predictions()} for v in variants}
    by_strategy: dict[str, list[Variant]] = {}
    for v in variants:
        by_strategy.setdefault(v.strategy, []).append(v)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise LabelsError(f"{path}: cannot read the labels file ({e.strerror})") from None
    labels = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LabelsError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise LabelsError(f"{where}: a label is an object with id, strategy and correct")
        for key in ("id", "strategy", "correct"):
            if key not in row:
                raise LabelsError(f"{where}: field '{key}' is missing")
        name, correct = str(row["strategy"]), row["correct"]
        if name in by_name:
            matches = [by_name[name]]
        elif name in by_strategy:
            matches = by_strategy[name]
        else:
            raise LabelsError(f"{where}: field 'strategy': unknown strategy or variant "
                              f"'{name}'; the report has: {', '.join(sorted(by_name))}")
        if len(matches) > 1:
            raise LabelsError(f"{where}: field 'strategy': '{name}' has several variants "
                              f"({', '.join(v.name for v in matches)}); name one of them")
        if isinstance(correct, bool) or correct in (0, 1):
            correct = bool(correct)
        else:
            raise LabelsError(f"{where}: field 'correct' must be true or false, got {correct!r}")
        v = matches[0]
        if str(row["id"]) not in ids[v.name]:
            raise LabelsError(f"{where}: field 'id': no item '{row['id']}' among the "
                              f"predictions of {v.name}")
        labels.append(Label(str(row["id"]), v.name, correct))
    if not labels:
        raise LabelsError(f"{path}: no labels in the file")
    return labels


def _scores(v: Variant) -> pd.DataFrame:
    """Per (seed, item) scores of a variant's runs."""
    frames = [r.scores().assign(seed=int(r.metrics.get("seed", 0))) for r in v.runs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _has(df: pd.DataFrame, key: str) -> bool:
    return key in df and df[key].notna().any()


def _kappa(stats: dict) -> str:
    if stats.get("kappa") is None:
        return f.NA
    if stats.get("kappa_low") is None:  # no variance estimate (one call constant)
        return f"{stats['kappa']:.2f}"
    return f"{stats['kappa']:.2f} [{stats['kappa_low']:.2f}, {stats['kappa_high']:.2f}]"


def trust(variants: list[Variant], labels: list[Label] | None = None) -> dict[str, dict]:
    """Per call: agreement with choice correctness (pooled over variants and per variant)
    and with human labels; only calls that some run scored."""
    frames = {v.name: _scores(v) for v in variants}
    out: dict[str, dict] = {}
    human = pd.DataFrame([vars(x) for x in labels]) if labels else None
    for key in ["choice_correct", *CALLS]:
        if not any(_has(df, key) for df in frames.values()):
            continue
        per, pooled_a, pooled_b = {}, [], []
        for name, df in frames.items():
            if key == "choice_correct" or not (_has(df, key) and _has(df, "choice_correct")):
                continue
            both = df[[key, "choice_correct"]].dropna()
            per[name] = agreement(both[key].tolist(), both["choice_correct"].tolist())
            pooled_a += both[key].tolist()
            pooled_b += both["choice_correct"].tolist()
        entry = {"per_variant": per,
                 "vs_choice": agreement(pooled_a, pooled_b) if pooled_a else None,
                 "vs_human": None}
        if human is not None:
            a, b = [], []
            for name, df in frames.items():
                if not _has(df, key):
                    continue
                mine = human[human.variant == name]
                call = df.dropna(subset=[key]).groupby("id")[key].mean()  # seeds averaged
                for row in mine.itertuples():
                    if row.id in call.index:
                        a.append(float(call[row.id] >= 0.5))
                        b.append(float(row.correct))
            entry["vs_human"] = agreement(a, b) if a else None
        out[key] = entry
    return out


def warnings_for(t: dict[str, dict]) -> dict[str, str]:
    """Call -> its warning, from its agreement with human labels when there are any,
    else with choice correctness."""
    out = {}
    for key, e in t.items():
        basis = e.get("vs_human") or e.get("vs_choice")
        if basis is None:
            if key != "choice_correct":
                out[key] = UNCHECKED
            continue
        w = trust_warning(basis)
        if w:
            out[key] = w + (" with human labels" if e.get("vs_human") else " with choice accuracy")
    return out


def free_form_table(variants: list[Variant], warnings: dict[str, str]) -> Table | None:
    cols = {"contains": "contains", "F1": "f1", "semantic similarity": "semantic_similarity",
            "semantic call": "semantic_correct", "judge: correct": "judge_correct",
            "groundedness": "groundedness", "unsupported": "unsupported_rate"}
    if not any(v.values("semantic_similarity") or v.values("contains") for v in variants):
        return None
    rows = []
    for v in variants:
        row = {"variant": v.name}
        for label, key in cols.items():
            if key in ("groundedness", "unsupported_rate") and not v.can_cite:
                row[label] = f.CANNOT_CITE
            else:
                row[label] = f.number(v.mean(key))
        row["scoring seconds"] = f.seconds(sum(sum((r.metrics.get("eval_s") or {}).values())
                                               for r in v.runs) / len(v.runs))
        th = v.values("semantic_calibration")
        row["threshold (source)"] = (f"{th[0]['value']:.3f} ({th[0]['source']})"
                                     if th and th[0].get("value") is not None
                                     else f"{f.NA}: no threshold" if th else f.NA)
        rows.append(row)
    df = pd.DataFrame(rows)
    for label, key in cols.items():
        if (df[label].isin([f.NA, f.CANNOT_CITE])).all():
            df = df.drop(columns=label)
        elif key in warnings:
            df = df.rename(columns={label: label + " ⚠"})
    note = ("Generated answers. Semantic similarity: cosine of the answer and its closest gold "
            "answer (the run's embedder); the semantic call marks it correct at the threshold "
            "shown, calibrated on the run's outputs that name one answer choice when there are "
            "enough, else the embedder's stored one. Judge: an LLM grades each answer "
            "(rubric conf/judge_rubric). Groundedness: the share of an answer's content "
            "supported by the passages it cites; unsupported: answers no cited passage "
            "supports. Scoring seconds: what these scorers took per run (the judge most); "
            "evaluation cost, not part of any variant's cost.")
    if warnings:
        note += " ⚠ " + "; ".join(f"{CALLS.get(k, k)}: {w}" for k, w in warnings.items()) + \
            ": read those columns with care."
    return Table("free_form", "Free-form answers", df, note)


def trust_table(t: dict[str, dict], variants: list[Variant]) -> Table | None:
    rows = []
    for key, e in t.items():
        if key == "choice_correct" and e.get("vs_human") is None:
            continue
        row = {"metric": "choice accuracy" if key == "choice_correct" else CALLS[key]}
        vc = e.get("vs_choice")
        row["agrees with choice accuracy"] = f.number(vc["accuracy"], 2) if vc else f.NA
        row["kappa vs choice [95% CI]"] = _kappa(vc) if vc else f.NA
        for v in variants:
            s = e["per_variant"].get(v.name)
            row[f"kappa: {v.name}"] = f.number(s["kappa"], 2) if s and s["kappa"] is not None \
                else f.NA
        vh = e.get("vs_human")
        if any(x.get("vs_human") for x in t.values()):
            row["human labels: n"] = str(vh["n"]) if vh else "0"
            row["agrees with humans"] = f.number(vh["accuracy"], 2) if vh else f.NA
            row["kappa vs humans [95% CI]"] = _kappa(vh) if vh else f.NA
        w = trust_warning(vh or vc) if (vh or vc) else UNCHECKED
        row["warning"] = w or ""
        rows.append(row)
    if not rows:
        return None
    unchecked = all(r["warning"] == UNCHECKED for r in rows)
    return Table("trust", "How far the free-form metrics can be trusted", pd.DataFrame(rows),
                 ("**Nothing here can be checked**: the task has no answer choices and no human "
                  "labels were given, so read the free-form metrics as unverified; label a "
                  "sample of answers and pass it with --labels. " if unchecked else "") +
                 "Agreement of each yes/no free-form call with the choice-based score on the "
                 "same items (items with choices and a generated answer), and with human labels "
                 "when a labels file was given (harness-report --labels). Kappa is agreement "
                 "beyond chance (Cohen), with a 95% interval (Fleiss-Cohen-Everitt variance); "
                 f"below {LOW_KAPPA} it is fair at best and the metric carries a warning.")


RANKED = {"choice_accuracy": "choice accuracy", "contains": "contains", "f1": "F1",
          "semantic_similarity": "semantic similarity", "semantic_correct": "semantic call",
          "judge_correct": "judge: correct", "judge_score": "judge score",
          "groundedness": "groundedness"}


def ranking_table(variants: list[Variant], metric: str, extra: Sequence[Metric] = ()) -> Table | None:
    """The variants in order by each metric they have, beside the order by the report's
    primary metric: does another metric change the ranking?"""
    def order(key: str) -> list[str]:
        scored = [(v.mean(key), v.name) for v in variants if v.values(key)]
        return [n for _, n in sorted(scored, key=lambda x: (-x[0], x[1]))]

    base = order(metric)
    rows = []
    for key, label in {**RANKED, **{m.name: m.label for m in extra}}.items():
        ranked = order(key)
        if len(ranked) < 2:
            continue
        shared = [n for n in base if n in ranked]
        same = [n for n in ranked if n in shared] == shared
        rows.append({"metric": label + (" (primary)" if key == metric else ""),
                     "ranking, best first": " > ".join(ranked),
                     f"same order as {metric}": "—" if key == metric else ("yes" if same else "no")})
    if not any(r["metric"].endswith("(primary)") for r in rows):
        rows.insert(0, {"metric": f"{metric} (primary)", "ranking, best first": " > ".join(base),
                        f"same order as {metric}": "—"})
    if len(rows) < 2:
        return None
    return Table("ranking", "Ranking by each metric", pd.DataFrame(rows),
                 "The variants ordered by the mean of each metric (ties by name), and whether "
                 "the order of the variants both rank is the primary metric's. The order is of "
                 "means only: see Paired comparisons for which differences are significant.")


def _labelled(v: Variant, labels: list[Label], key: str) -> tuple[pd.Series, pd.Series] | None:
    """The call's per-item value (seeds averaged) and the human labels of this variant's
    items (the last label of an item counts), or None when the variant lacks the call."""
    df = _scores(v)
    if not _has(df, key):
        return None
    call = df.dropna(subset=[key]).groupby("id")[key].mean()
    human = pd.Series({x.id: float(x.correct) for x in labels if x.variant == v.name}, dtype=float)
    return call, human[human.index.isin(call.index)]


def _ppi(call: pd.Series, human: pd.Series):
    unlabelled = call[~call.index.isin(human.index)]
    return ppi_mean(human.to_numpy(), call[human.index].to_numpy(), unlabelled.to_numpy())


def corrected_key(t: dict[str, dict], metric: str) -> str | None:
    """The call the paired PPI comparison corrects: the primary metric when it is a yes/no
    call with labels, else the call that agrees best with the labels (Cohen's kappa)."""
    judged = {k: e["vs_human"] for k, e in t.items() if k in CALLS and e.get("vs_human")}
    if metric in judged:
        return metric
    ranked = sorted(judged, key=lambda k: -(judged[k].get("kappa") or -1.0))
    return ranked[0] if ranked else None


def ppi_table(variants: list[Variant], labels: list[Label] | None, t: dict[str, dict],
              metric: str) -> Table | None:
    """Each variant's accuracy by human judgement, estimated from its yes/no calls on every
    item and the labels on a slice (harness.report.ppi), beside the call's own mean and the
    labels alone; then the pairs, compared the same way on the call named in the note."""
    if not labels:
        return None
    rows = []
    for key, label in CALLS.items():
        for v in variants:
            got = _labelled(v, labels, key)
            if got is None or len(got[1]) < 2:
                continue
            call, human = got
            est = _ppi(call, human)
            alone = ppi_mean(human.to_numpy(), human.to_numpy(), [], tune=False)
            naive = bootstrap_ci(call.to_numpy())
            rows.append({"variant": v.name, "metric corrected": label,
                         "metric alone [95% CI]": f.ci(naive), "labels": len(human),
                         "labels alone [95% CI]": _interval(alone),
                         "prediction-powered [95% CI]": _interval(est),
                         "metric weight λ": f"{est.lam:.2f}", "items": len(call)})
    if not rows:
        return None
    key = corrected_key(t, metric)
    pairs = _ppi_pairs(variants, labels, key) if key else []
    df = pd.DataFrame(rows + pairs)
    return Table("ppi", "Accuracy corrected by human labels (prediction-powered)", df.fillna(""),
                 "Accuracy as the human labels judge it, for each yes/no metric (the metric "
                 "corrected): the metric's own mean on every item; the labelled items alone; "
                 "and prediction-powered inference (Angelopoulos et al. 2023, with PPI++ power "
                 "tuning), which adds the labels' mean correction (label − metric) to the "
                 "metric's mean on the unlabelled items. It is unbiased whatever the metric's "
                 "errors, and its interval valid, when the labelled items are a random sample; "
                 "λ is the metric's weight (0: the labels alone; 1: plain PPI). "
                 + (f"Pairs (A − B): the same estimator on per-item differences of "
                    f"{CALLS[key]}, over items labelled for both; p from its normal interval."
                    if pairs else "No pair has items labelled for both of its variants."))


def _interval(e) -> str:
    return f.NA if e.mean != e.mean else f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def _ppi_pairs(variants: list[Variant], labels: list[Label], key: str) -> list[dict]:
    rows = []
    got = {v.name: _labelled(v, labels, key) for v in variants}
    for i, a in enumerate(variants):
        for b in variants[i + 1:]:
            if got[a.name] is None or got[b.name] is None:
                continue
            (ca, ha), (cb, hb) = got[a.name], got[b.name]
            items = ca.index.intersection(cb.index)
            both = ha.index.intersection(hb.index).intersection(items)
            if len(both) < 2:
                continue
            call, human = (ca[items] - cb[items]), (ha[both] - hb[both])
            est = _ppi(call, human)
            rows.append({"variant": f"{a.name} − {b.name}", "metric corrected": CALLS[key],
                         "metric alone [95% CI]": f"{call.mean():+.3f}", "labels": len(both),
                         "prediction-powered [95% CI]": f"{est.mean:+.3f} [{est.low:+.3f}, "
                                                        f"{est.high:+.3f}], p={est.p_value:.2g}",
                         "metric weight λ": f"{est.lam:.2f}", "items": len(items)})
    return rows
