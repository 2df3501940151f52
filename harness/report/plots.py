"""The report's plots (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.report.build import Report  # noqa: E402
from harness.report.fmt import NO_UPDATE, with_mode  # noqa: E402

PALETTE = plt.get_cmap("tab10").colors
TITLES = {
    "accuracy_vs_cost": "Accuracy against total cost (Pareto front marked)",
    "accuracy_vs_latency": "Accuracy against p95 latency per query (Pareto front marked)",
    "seed_spread": "Accuracy per seed, with the 95% interval",
    "latency_distribution": "Latency per query",
    "freshness": "Accuracy on changed facts against the cost of one update",
    "recall_vs_latency": "Retrieval recall@k against p95 search latency per query",
    "learn_forget": "Accuracy against forgetting, one line per tuning method (Pareto points filled)",
    "tuning": "Expected best validation score against trials and their modelled cost "
              "(95% bootstrap band)",
}


def colors(report: Report) -> dict[str, tuple[float, ...]]:
    """One colour per variant, in the report's order (the same in every plot)."""
    return {v.name: PALETTE[i % len(PALETTE)] for i, v in enumerate(report.variants)}


def _tradeoff(report: Report, x_col: str, front_col: str, xlabel: str, path: Path) -> None:
    color = colors(report)
    df = report.costs
    est = {v.name: v.estimate for v in report.variants}
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    ok = df[~df[x_col].isna()]
    placed: list[tuple[float, float]] = []
    for _, r in ok.iterrows():
        e = est[r.variant]
        ax.errorbar(r[x_col], e.mean, yerr=[[e.mean - e.low], [e.high - e.mean]], fmt="o",
                    color=color[r.variant], capsize=3, markersize=7,
                    markeredgecolor="black" if r[front_col] else color[r.variant])
        # nudge a label down when an earlier one sits close by (near-equal points)
        near = sum(abs(e.mean - y) < 0.04 and _close(r[x_col], x, ok[x_col]) for x, y in placed)
        placed.append((r[x_col], e.mean))
        ax.annotate(r.variant, (r[x_col], e.mean), textcoords="offset points",
                    xytext=(6, 5 - 11 * near), fontsize=8)
    front = ok[ok[front_col]].sort_values(x_col)
    if len(front) > 0:
        ax.plot(front[x_col], front.accuracy, "--", color="black", linewidth=1,
                label="Pareto front", drawstyle="steps-post")
        ax.legend(loc="lower right", fontsize=8)
    _finish(fig, ax, path, list(ok[x_col]), xlabel, "accuracy", 1.02)


def _finish(fig, ax, path: Path, xs, xlabel: str, ylabel: str, ymax: float) -> None:
    """Log x when the points spread over more than 50x; labels, grid; write and close."""
    positive = [x for x in xs if x > 0]
    if len(positive) > 1 and max(positive) / min(positive) > 50:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, ymax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _close(a: float, b: float, values) -> bool:
    span = float(values.max() - values.min()) or 1.0
    return abs(a - b) < 0.05 * span


def _seed_spread(report: Report, path: Path) -> None:
    color = colors(report)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.55 * max(len(report.variants), 2)), dpi=110)
    for i, v in enumerate(report.variants):
        per_seed = v.outcomes.mean(axis=1) if v.outcomes.size else np.array([])
        e = v.estimate
        ax.plot([e.low, e.high], [i, i], color=color[v.name], linewidth=6, alpha=0.3,
                solid_capstyle="butt")
        ax.scatter(per_seed, [i] * len(per_seed), color=color[v.name], zorder=3, s=30,
                   edgecolor="black", linewidth=0.5)
        ax.plot([e.mean], [i], "|", color="black", markersize=14)
    ax.set_yticks(range(len(report.variants)), [v.name for v in report.variants], fontsize=8)
    ax.set_xlabel("accuracy (dots: seeds; bar: 95% interval; tick: mean)")
    ax.set_xlim(-0.02, 1.02)
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _latency(report: Report, path: Path) -> None:
    color = colors(report)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.55 * max(len(report.variants), 2)), dpi=110)
    data = [v.latency[~np.isnan(v.latency)] for v in report.variants]
    box = ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=True,
                     patch_artist=True, flierprops={"markersize": 3})
    for patch, v in zip(box["boxes"], report.variants):
        patch.set_facecolor(color[v.name])
        patch.set_alpha(0.5)
    ax.set_yticks(range(1, len(report.variants) + 1), [v.name for v in report.variants],
                  fontsize=8)
    ax.invert_yaxis()
    flat = np.concatenate(data) if data else np.array([])
    if flat.size and flat.min() > 0 and flat.max() / flat.min() > 50:
        ax.set_xscale("log")
    ax.set_xlabel("seconds per query (box: quartiles; whiskers: 5th-95th percentile)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _freshness(report: Report, path: Path) -> None:
    """One arrow per (variant, update mode): from the accuracy on changed questions before
    the update (hollow) to after it (filled, with its 95% interval), at the update's cost.
    Log scale; `none` (nothing to update) sits at the left edge."""
    color = colors(report)
    df = report.freshness.frame.dropna(subset=["changed_after"])
    updating = df["mode"] != NO_UPDATE
    positive = df.update_usd[updating & (df.update_usd > 0)]
    floor = positive.min() / 10 if len(positive) else 1e-9
    xs = [r.update_usd if upd and r.update_usd > 0 else floor
          for upd, (_, r) in zip(updating, df.iterrows())]
    fig, ax = plt.subplots(figsize=(8.5, 5.0), dpi=110)
    placed: list[tuple[float, float]] = []
    for x, (_, r) in zip(xs, df.iterrows()):
        c = color[r.variant]
        ax.annotate("", (x, r.changed_after), (x, r.changed_before),
                    arrowprops={"arrowstyle": "->", "color": c, "alpha": 0.6})
        ax.plot([x], [r.changed_before], "o", mfc="white", color=c, markersize=6)
        ax.errorbar([x], [r.changed_after], yerr=[[r.changed_after - r.changed_after_low],
                                                 [r.changed_after_high - r.changed_after]],
                    fmt="o", color=c, capsize=3, markersize=7)
        # stack labels of points that sit close together (same cost, similar accuracy)
        near = sum(abs(np.log10(x / px)) < 0.3 and abs(r.changed_after - py) < 0.08
                   for px, py in placed)
        placed.append((x, r.changed_after))
        name = with_mode(r.variant, r["mode"])
        ax.annotate(name, (x, r.changed_after), textcoords="offset points",
                    xytext=(7, 3 - 10 * near), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(floor / 3, max(xs) * 30)
    ax.set_xlabel("cost of one update, USD (log scale; 'none' at the left edge)")
    ax.set_ylabel("accuracy on changed questions")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.plot([], [], "o", mfc="white", color="gray", label="before the update")
    ax.plot([], [], "o", color="gray", label="after (95% interval)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _recall(report: Report, path: Path) -> None:
    color = colors(report)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    xs = []
    for v in report.variants:
        if not v.retrieves:
            continue
        x = float(np.percentile(v.retrieval_latency, 95)) if v.retrieval_latency.size else np.nan
        y = v.mean("recall_at_k")
        if np.isnan(x) or np.isnan(y):
            continue
        xs.append(x)
        ax.plot([x], [y], "o", color=color[v.name], markersize=7)
        ax.annotate(v.name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    _finish(fig, ax, path, xs, "p95 search latency per query, seconds (reranking included)",
            "recall@k", 1.05)


def _learn_forget(report: Report, path: Path) -> None:
    """Each method's points, accuracy against the control perplexity change, both with
    their 95% intervals as bars; a line through its Pareto points, the others hollow."""
    fr = report.frontier
    fig, ax = plt.subplots(figsize=(8.0, 5.0), dpi=110)
    for i, (method, pts) in enumerate(fr.methods.items()):
        c = PALETTE[i % len(PALETTE)]
        for p in pts:
            xerr = None if np.isnan(p.low) else [[p.delta - p.low], [p.high - p.delta]]
            e = p.accuracy
            ax.errorbar([p.delta], [e.mean], xerr=xerr, yerr=[[e.mean - e.low], [e.high - e.mean]],
                        fmt="o", color=c, capsize=3, markersize=7, alpha=0.85,
                        mfc=c if p.pareto else "white")
            ax.annotate(p.setting, (p.delta, e.mean), textcoords="offset points",
                        xytext=(6, 4), fontsize=7)
        front = sorted((p for p in pts if p.pareto), key=lambda p: p.delta)
        ax.plot([p.delta for p in front], [p.accuracy.mean for p in front], "-", color=c,
                linewidth=1.5, label=method)
    ax.axvline(0, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("control-text perplexity change after tuning (lower: forgot less)")
    ax.set_ylabel(report.frontier.metric)
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _tuning(report: Report, path: Path) -> None:
    """Each searched strategy's expected best validation score of n random trials, against
    n and against n trials' expected modelled cost, with its bootstrap band."""
    fig, (by_n, by_cost) = plt.subplots(1, 2, figsize=(10.0, 4.4), dpi=110, sharey=True)
    costs = []
    for i, s in enumerate(st for st in report.studies if st.curve is not None):
        c, curve = PALETTE[i % len(PALETTE)], s.curve
        by_n.plot(curve.ns, curve.mean, "o-", color=c, label=s.study, markersize=4)
        by_n.fill_between(curve.ns, curve.low, curve.high, color=c, alpha=0.15)
        if not np.isnan(curve.cost_per_trial_usd) and curve.cost_per_trial_usd > 0:
            x = curve.ns * curve.cost_per_trial_usd
            costs += list(x)
            by_cost.plot(x, curve.mean, "o-", color=c, markersize=4)
            by_cost.fill_between(x, curve.low, curve.high, color=c, alpha=0.15)
    by_n.set_xlabel("trials (random draws from the strategy's space)")
    by_n.set_ylabel(f"expected best validation {report.studies[0].metric}")
    by_n.legend(loc="lower right", fontsize=8)
    by_cost.set_xlabel("expected modelled cost of those trials, USD")
    if costs and max(costs) / min(costs) > 50:
        by_cost.set_xscale("log")
    for ax in (by_n, by_cost):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def make_plots(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write the plots as PNG files under out_dir; returns name -> path."""
    if not report.variants:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    retrieving = sum(v.retrieves for v in report.variants)
    paths = {name: out_dir / f"{name}.png" for name in TITLES
             if (name != "freshness" or report.freshness is not None)
             and (name != "recall_vs_latency" or retrieving > 1)
             and (name != "learn_forget" or report.frontier is not None)
             and (name != "tuning" or any(st.curve is not None for st in report.studies))}
    _tradeoff(report, "total_usd", "pareto_cost",
              f"total cost, USD (build + {report.queries:,} queries)", paths["accuracy_vs_cost"])
    _tradeoff(report, "p95_s", "pareto_latency", "p95 latency per query, seconds",
              paths["accuracy_vs_latency"])
    _seed_spread(report, paths["seed_spread"])
    _latency(report, paths["latency_distribution"])
    if "freshness" in paths:
        _freshness(report, paths["freshness"])
    if "recall_vs_latency" in paths:
        _recall(report, paths["recall_vs_latency"])
    if "learn_forget" in paths:
        _learn_forget(report, paths["learn_forget"])
    if "tuning" in paths:
        _tuning(report, paths["tuning"])
    return paths
