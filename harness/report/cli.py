"""`harness-report [DIR ...]`: the comparison report over sweep or run directories
(default: the newest sweep under results/multirun).

Reads run files only. Writes into the first DIR (or --out): summary.csv (one row per run),
items.parquet (one row per test item, variant and seed), report.md with plots/ beside it,
and a self-contained report.html whose Items section shows every answer behind the numbers
(items.html beside it when that data is above --items-inline-mb); prints the decision
summary and where the report is.

`harness-report --compare OLD NEW`: what changed between two sweeps (compare.md and
compare.html, harness.report.compare).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from harness.cost.projection import own_hardware
from harness.errors import UserError
from harness.report.build import build_report
from harness.report.cost import BASES
from harness.report.cost_tables import CONTENTION_FACTOR
from harness.report.items import INLINE_MB, item_frame, write_item_frame
from harness.report.plots import make_plots
from harness.report.power import EQUIVALENCE
from harness.report.render import write_report
from harness.report.selection import SELECT_ON
from harness.run_files import atomic_write_text
from harness.run_folders import read_runs, summary_frame
from harness.system import config_dir


def newest_sweep(results_dir: Path) -> Path | None:
    sweeps = [p for p in (results_dir / "multirun").glob("*") if p.is_dir()]
    return max(sweeps, key=lambda p: p.stat().st_mtime) if sweeps else None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness-report", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("dirs", nargs="*", type=Path, help="sweep or run directories")
    ap.add_argument("--results-dir", type=Path, default=Path("results"),
                    help="where to look for the newest sweep when no DIR is given")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the report (default: the first DIR)")
    ap.add_argument("--queries", type=int, default=100_000,
                    help="query volume for total cost and the cost plot (default 100,000)")
    ap.add_argument("--title", default="", help="report title")
    ap.add_argument("--primary-metric", default=None, metavar="METRIC",
                    help="rank and test variants by this metric (also report.primary_metric="
                         "METRIC): choice_accuracy, exact_match, f1, contains, "
                         "semantic_similarity, semantic_correct, judge_correct, judge_score, "
                         "groundedness, recall_at_k, hit_at_k, mrr, ndcg_at_10, or a metric "
                         "of your own the runs recorded (harness.run_record); default: each "
                         "run's own (choice_accuracy; contains on a task without choices; "
                         "recall_at_k for retrieval only)")
    ap.add_argument("--labels", type=Path, default=None, metavar="LABELS_JSONL",
                    help="human labels (also report.labels=PATH), one JSON object per line: "
                         '{"id": ..., "strategy": <strategy or variant>, "correct": true|false}; '
                         "the report measures each metric's agreement with them")
    ap.add_argument("--cost-basis", choices=BASES, default="modelled",
                    help="seconds behind every cost (also report.cost_basis=): modelled (default) "
                         "= each run's counted work / this machine's calibrated throughput, the "
                         "same however busy the machine was; measured = the stopwatch")
    ap.add_argument("--project-to", default="", metavar="HW[,HW...]",
                    help="also estimate cost and p95 latency on this hardware (also "
                         "report.project_to=[L4,A100,H100]): names of conf/cost/hardware/*.yaml "
                         "(L4, A100, H100) or paths to YAML files of the same fields")
    ap.add_argument("--project-model", default=None, metavar="MODEL",
                    help="with --project-to: the study as it would run on another model (also "
                         "report.project_model=): a name in conf/cost/models/ (llama-3.1-8b, "
                         "qwen2.5-7b, llama-3.1-70b) or a path to a config.json; each variant's "
                         "work rescaled to it, the smallest plan that fits the GPU (checkpointing, "
                         "QLoRA, FSDP over N GPUs), time and cost")
    _decision_options(ap)
    return ap


def _decision_options(ap: argparse.ArgumentParser) -> None:
    """How the report decides and shows: timing flags, ties, picks, items, comparisons."""
    ap.add_argument("--contention-factor", type=float, default=CONTENTION_FACTOR, metavar="X",
                    help="flag a run whose measured seconds differ from its modelled ones by "
                         f"more than this factor (also report.contention_factor=; default "
                         f"{CONTENTION_FACTOR:g})")
    ap.add_argument("--equivalence-margin", type=float, default=EQUIVALENCE, metavar="D",
                    help="call two variants a tie only when the 95%% CI of their difference lies "
                         "inside +-D (also report.equivalence_margin=; default "
                         f"{EQUIVALENCE:g}, i.e. 5 points); otherwise a non-significant pair "
                         "is 'no evidence', with the difference the test set could detect")
    ap.add_argument("--select-on", choices=SELECT_ON, default="auto",
                    help="when a sweep holds several variants of one strategy, the decision "
                         "summary ranks one per strategy, picked on: val = their validation "
                         "runs (the same config with eval_split=val, or a search's trials); "
                         "test = the test split (optimistic: the summary says by how much); "
                         "auto (default) = val where every variant has one, else test; none = "
                         "rank every variant (also report.select_on=)")
    ap.add_argument("--cluster-by", default=None, metavar="WHAT",
                    help="resample test questions by cluster (also report.cluster_by=): source "
                         "(their first source document), a field of the examples file, or none; "
                         "default: each run's task.cluster_by (source)")
    ap.add_argument("--items-inline-mb", type=float, default=INLINE_MB, metavar="MB",
                    help="the item explorer's data is embedded in report.html up to this size; "
                         "above it, it goes to items.html beside the report, which report.html "
                         f"links to (also report.items_inline_mb=; default {INLINE_MB:g})")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"), default=None,
                    help="what changed between two sweeps: matched variants' paired changes, "
                         "flipped items, whether the decision changed; writes compare.md and "
                         "compare.html (into --out, default NEW)")


def _apply_settings(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """`report.<key>=<value>` among the directories is the same as the option; returns the
    hardware to project to."""
    dirs = []
    settings = {"report.primary_metric": "primary_metric", "report.labels": "labels",
                "report.cost_basis": "cost_basis", "report.project_to": "project_to",
                "report.project_model": "project_model",
                "report.contention_factor": "contention_factor",
                "report.equivalence_margin": "equivalence_margin",
                "report.select_on": "select_on", "report.items_inline_mb": "items_inline_mb",
                "report.cluster_by": "cluster_by"}
    for d in args.dirs:  # report.<key>=<value> is the same as the option
        key, eq, value = str(d).partition("=")
        if eq and key in settings:
            setattr(args, settings[key], value)
        elif eq and key.startswith("report."):
            ap.error(f"unknown setting {key}; the report takes {', '.join(settings)}")
        else:
            dirs.append(d)
    if args.labels is not None:
        args.labels = Path(args.labels)
    if args.select_on not in SELECT_ON:
        ap.error(f"report.select_on must be one of {', '.join(SELECT_ON)}, got '{args.select_on}'")
    if args.cost_basis not in BASES:
        ap.error(f"report.cost_basis must be modelled or measured, got '{args.cost_basis}'")
    for key in ("contention_factor", "equivalence_margin", "items_inline_mb"):
        try:
            setattr(args, key, float(getattr(args, key)))
        except ValueError:
            ap.error(f"report.{key} must be a number, got '{getattr(args, key)}'")
    project_to = [h.strip() for h in str(args.project_to).strip("[]").split(",") if h.strip()]
    args.dirs = dirs
    if args.queries < 0:
        ap.error("--queries must be >= 0")
    if not args.items_inline_mb > 0:
        ap.error(f"report.items_inline_mb must be > 0, got {args.items_inline_mb:g}")
    return project_to


def runs_project_to(runs: list) -> list[str]:
    """The runs' own report.project_to (a preset's, e.g. experiment=study) when the command
    line gives none: names, or `auto` for the profile of the GPU they ran on."""
    wanted = {str(h) for r in runs for h in _as_list(r.config.get("report.project_to"))}
    names = sorted(wanted - {"auto"})
    if "auto" in wanted:
        names += own_hardware([(r.metrics.get("cost") or {}).get("hardware", "") for r in runs],
                              [config_dir()])
    return list(dict.fromkeys(names))


def _as_list(value) -> list:
    """A flattened config value (a list as JSON text) as a list."""
    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    project_to = _apply_settings(ap, args)
    if args.compare:
        return _compare(args)
    dirs = args.dirs or [d for d in [newest_sweep(args.results_dir)] if d]
    if not dirs:
        print(f"harness-report: no sweep under {args.results_dir}/multirun; pass a directory",
              file=sys.stderr)
        return 2
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        print(f"harness-report: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    runs = read_runs(dirs)
    if not runs:
        print(f"harness-report: no run directories (with metrics.json) under "
              f"{', '.join(map(str, dirs))}", file=sys.stderr)
        return 2
    project_to = project_to or runs_project_to(runs)
    out = args.out or dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    write_summary(summary_frame(runs), out)
    try:
        report = build_report(runs, queries=args.queries, title=args.title,
                              primary_metric=args.primary_metric, labels=args.labels,
                              cost_basis=args.cost_basis, project_to=project_to,
                              project_model=args.project_model,
                              contention_factor=args.contention_factor,
                              equivalence_margin=args.equivalence_margin,
                              select_on=args.select_on, cluster_by=args.cluster_by)
    except UserError as e:
        print(f"harness-report: error: {e}", file=sys.stderr)
        return 2
    report.plots = make_plots(report, out / "plots")
    md, html = write_report(report, out, items_inline_mb=args.items_inline_mb)
    parquet = write_item_frame(item_frame(report.items), out)
    print("Decision summary")
    for line in report.decision:
        print(" - " + line.replace("**", ""))
    if report.failures:
        print(f"\n{len(report.failures)} run(s) not complete:")
        for r in report.failures:
            error = str(r.metrics.get("error") or "killed or still running").splitlines()[0]
            print(f"   {r.path}: {r.status}: {error[:200]}")
    print(f"\nReport: {html}\n        {md}\n        {out / 'summary.csv'} (and .parquet)"
          + (f"\n        {parquet} (every answer)" if parquet else ""))
    track_report(runs, [md, html, out / "summary.csv", out / "plots"])
    return 0


def _compare(args: argparse.Namespace) -> int:
    from harness.report.compare import compare_sweeps

    missing = [d for d in args.compare if not d.is_dir()]
    if missing:
        print(f"harness-report: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    old, new = args.compare
    try:
        report = compare_sweeps([old], [new], primary_metric=args.primary_metric,
                                queries=args.queries, cost_basis=args.cost_basis)
    except UserError as e:
        print(f"harness-report: error: {e}", file=sys.stderr)
        return 2
    out = args.out or new
    md, html = write_report(report, out, stem="compare", items_inline_mb=args.items_inline_mb)
    print("What changed")
    for line in report.overview[1:] + report.decision:
        print(" - " + line.replace("**", ""))
    print(f"\nComparison: {html}\n            {md}")
    return 0


TEXT_COLUMNS = ("run", "variant", "strategy", "status", "split_hash", "model", "task", "error")
FLAG_COLUMNS = ("trains", "can_cite")


def write_summary(frame: pd.DataFrame, out: Path) -> None:
    """summary.csv, and summary.parquet with typed columns: text as strings, flags as
    booleans, every other column a number, an integer when every value is one (all
    nullable: a run without the value holds null)."""
    atomic_write_text(out / "summary.csv", frame.to_csv(index=False))
    typed = frame.copy()
    for col in typed.columns:
        if col in TEXT_COLUMNS:
            typed[col] = typed[col].astype("string")
        elif col in FLAG_COLUMNS:
            typed[col] = typed[col].astype("boolean")
        else:
            known = typed[col].dropna()
            whole = len(known) and all(isinstance(v, int) and not isinstance(v, bool)
                                       for v in known)  # seeds, counts: integers
            typed[col] = pd.to_numeric(typed[col], errors="coerce").astype(
                "Int64" if whole else "Float64")
    tmp = out / ".summary.parquet.tmp"
    typed.to_parquet(tmp, index=False)
    tmp.replace(out / "summary.parquet")


def track_report(runs: list, files: list[Path]) -> None:
    """When the runs were tracked (tracking=mlflow), the report goes on each sweep's MLflow
    run and every run's variant tag gets the report's label. A tracker that is down: said
    once, nothing fails."""
    from harness.tracking import sweep_dir_of
    from harness.tracking.track import read_tracking

    sweeps: dict[Path, list] = {}
    for r in runs:
        sweep = sweep_dir_of(r.path)
        if sweep is not None and (read_tracking(r.path) or r.config.get("tracking.backend")
                                  not in (None, "none")):
            sweeps.setdefault(sweep, []).append(r)
    for sweep, tracked in sweeps.items():
        try:
            from harness.tracking.cli import settings_for
            from harness.tracking.mlflow_log import MlflowLog

            settings = settings_for(tracked[0].path, None, None)
            parent = MlflowLog(settings).log_report(sweep, files, tracked)
            print(f"        logged to MLflow ({settings.experiment}), sweep run {parent}")
        except Exception as e:  # the tracker's problem is never the report's
            from harness.tracking.settings import failure
            print(f"harness-report: the report was not logged to MLflow ({failure(e)})",
                  file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
