"""`harness-report [DIR ...]`: summarize run directories (default: the newest sweep).

Writes summary.csv (one row per run) into the first DIR and prints a per-strategy table.
Only complete runs contribute numbers; failed and incomplete runs are listed as such.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness.report.runs import load_runs
from harness.results import atomic_write_text

SHOWN = ["choice_accuracy", "seen_choice_accuracy", "contains", "recall_at_k", "fit_s",
         "latency_p95_s", "seconds_per_query", "control_perplexity_delta"]
BLANK = {"recall_at_k": "cannot cite", "seen_choice_accuracy": "not tuned",
         "control_perplexity_delta": "not tuned"}


def newest_sweep(results_dir: Path) -> Path | None:
    sweeps = [p for p in (results_dir / "multirun").glob("*") if p.is_dir()]
    return max(sweeps, key=lambda p: p.name) if sweeps else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="harness-report", description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path, help="sweep or run directories")
    ap.add_argument("--results-dir", type=Path, default=Path("results"),
                    help="where to look for the newest sweep when no DIR is given")
    args = ap.parse_args(argv)
    dirs = args.dirs or [d for d in [newest_sweep(args.results_dir)] if d]
    if not dirs:
        print(f"harness-report: no sweep under {args.results_dir}/multirun; pass a directory",
              file=sys.stderr)
        return 2
    runs = load_runs(dirs)
    if runs.empty:
        print(f"harness-report: no run directories (with metrics.json) under "
              f"{', '.join(map(str, dirs))}", file=sys.stderr)
        return 2
    out = dirs[0] / "summary.csv"
    atomic_write_text(out, runs.to_csv(index=False))
    done = runs[runs.status == "complete"]
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):
        if not done.empty:
            numeric = done[SHOWN].apply(pd.to_numeric, errors="coerce").astype(float)
            table = numeric.groupby(done["strategy"]).mean()
            shown = table.map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
            for col, text in BLANK.items():  # say what a missing number means
                shown.loc[table[col].isna(), col] = text
            shown.insert(0, "runs", done.groupby("strategy").size())
            print(shown.to_string())
        bad = runs[runs.status != "complete"]
        if not bad.empty:
            print(f"\n{len(bad)} run(s) not complete:")
            print(bad[["run", "status", "error"]].to_string(index=False))
    print(f"\nsummary: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
