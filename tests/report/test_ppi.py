"""Prediction-powered accuracy against simulation: a yes/no metric with known error rates
on every item, human labels on a random slice of 100. Over 2,000 simulated draws the PPI
interval covers the true accuracy at least 93% of the time; the metric's own interval,
biased by its errors, far less often. And the report shows it beside the naive metric."""

from __future__ import annotations

import json

import numpy as np

from harness.report.cli import main as report_main
from harness.report.ppi import ppi_mean
from harness.stats import bootstrap_ci
from tests.report.test_report_free_form import N, _md, sweep  # noqa: F401 (fixture)

TRUE, FALSE_POS, FALSE_NEG = 0.6, 0.3, 0.1  # the metric calls 30% of wrong answers right


def _draw(rng, items: int = 1000, labelled: int = 100):
    y = (rng.random(items) < TRUE).astype(float)
    f = np.where(y == 1, rng.random(items) >= FALSE_NEG, rng.random(items) < FALSE_POS).astype(float)
    slice_ = rng.choice(items, labelled, replace=False)
    rest = np.setdiff1d(np.arange(items), slice_)
    return y, f, slice_, rest


def test_ppi_covers_the_true_accuracy_and_the_naive_metric_does_not():
    rng = np.random.default_rng(0)
    draws, ppi_hits, naive_hits, widths, alone_widths = 2000, 0, 0, [], []
    for _ in range(draws):
        y, f, lab, rest = _draw(rng)
        e = ppi_mean(y[lab], f[lab], f[rest])
        ppi_hits += e.low <= TRUE <= e.high
        widths.append(e.high - e.low)
        naive = bootstrap_ci(f, n_boot=400, seed=int(rng.integers(1 << 30)))
        naive_hits += naive.low <= TRUE <= naive.high
        alone = ppi_mean(y[lab], f[lab], [], tune=False)
        alone_widths.append(alone.high - alone.low)
    ppi_cover, naive_cover = ppi_hits / draws, naive_hits / draws
    print(f"coverage of {TRUE}: PPI {ppi_cover:.3f}, naive metric {naive_cover:.3f}; mean width "
          f"PPI {np.mean(widths):.3f} vs labels alone {np.mean(alone_widths):.3f}")
    assert ppi_cover >= 0.93
    assert naive_cover < 0.5  # the metric's bias (+0.06) puts the truth outside its interval
    assert np.mean(widths) < np.mean(alone_widths)  # the unlabelled items narrow it


def test_plain_ppi_and_labels_alone_by_hand():
    y, fl, fu = [1, 0, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0, 1, 1]
    e = ppi_mean(y, fl, fu, tune=False)  # lam = 1: mean_U(f) + mean_L(y - f)
    assert abs(e.mean - (4 / 6 + (0 - 1 + 0 + 1) / 4)) < 1e-12 and e.lam == 1.0
    alone = ppi_mean(y, fl, [], tune=False)
    assert alone.lam == 0.0 and abs(alone.mean - 0.75) < 1e-12


def test_labels_all_alike_keep_an_honest_interval():
    # a real free-form sweep: 20 labels of the zero-shot model, all wrong, and a metric that
    # never called one right. A normal interval collapses to [0, 0]; the exact one does not.
    e = ppi_mean([0] * 20, [0] * 20, [0] * 52)
    assert e.mean == 0 and e.low == 0 and abs(e.high - (1 - 0.025 ** (1 / 20))) < 1e-9
    assert 0.16 < e.high < 0.17


def test_the_report_shows_prediction_powered_accuracy_beside_the_metric(sweep):  # noqa: F811
    # 40 labels: 20 items of each variant; humans agree with the choice score there
    choice = {"rag": [1] * 30 + [0] * 10, "prompt": [1, 0] * 5 + [0] * 30}
    rows = [{"id": f"q{i}", "strategy": s, "correct": bool(choice[s][i])}
            for s in ("rag", "prompt") for i in range(0, N, 2)]
    labels = sweep / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report_main([str(sweep), "--labels", str(labels)]) == 0
    table = _md(sweep).split("## Accuracy corrected by human labels")[1].split("\n## ")[0]
    print(table)

    def cells(start: str) -> list[str]:
        row = next(x for x in table.splitlines() if x.startswith(start))
        return [c.strip() for c in row.split("|")[1:-1]]

    # by hand (the semantic call; labels on the even items): prompt's call and labels agree
    # there, 5 of 20; rag's call is 0.75 on all 40 items, its labels 15 of 20
    prompt, rag = cells("| prompt | semantic call |"), cells("| rag | semantic call |")
    assert prompt[2].startswith("0.250 [") and prompt[3] == "20" and prompt[4].startswith("0.250 [")
    assert prompt[5].startswith("0.250 [") and prompt[7] == "40"
    assert rag[2].startswith("0.750 [") and rag[4].startswith("0.750 [") and rag[5].startswith("0.750 [")
    pair = cells("| prompt − rag |")  # on the call that agrees best with the labels
    assert pair[3] == "20" and pair[5].startswith("-0.500 [") and "p=" in pair[5]
