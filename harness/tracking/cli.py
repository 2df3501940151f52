"""`harness-track DIR [DIR ...]`: log finished run folders to MLflow afterwards.

Runs made without tracking, or whose tracker was down. A run already logged with the same
status and finish time is left alone (the key is its config hash), so running it twice
adds nothing.

Where to: --uri / --experiment, else what the run's tracking.json says it was meant for,
else its config's tracking block, else the local store under its results_dir
(sqlite:///<results_dir>/mlflow/mlflow.db).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from harness.errors import UserError
from harness.run_files import find_runs
from harness.tracking.settings import TrackingSettings, failure, redact, sweep_dir_of
from harness.tracking.track import read_tracking


def settings_for(run_dir: Path, uri: str | None, experiment: str | None) -> TrackingSettings:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    block = dict(config.get("tracking") or {})
    before = read_tracking(run_dir)
    if before.get("uri") and "***" not in str(before["uri"]):  # never a redacted one
        block["uri"] = before["uri"]
    if before.get("experiment"):
        block["experiment"] = before["experiment"]
    block["backend"] = "mlflow"
    if uri:
        block["uri"] = uri
    if experiment:
        block["experiment"] = experiment
    return TrackingSettings.from_config(block, config.get("results_dir") or "results")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness-track", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep or run folders")
    ap.add_argument("--uri", default=None, help="MLflow tracking URI (http://host:5000, "
                    "sqlite:///path/mlflow.db); credentials: MLFLOW_TRACKING_USERNAME/PASSWORD "
                    "or MLFLOW_TRACKING_TOKEN in the environment")
    ap.add_argument("--experiment", default=None, help="MLflow experiment name")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"harness-track: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    from harness.tracking.mlflow_log import MlflowLog, sweep_labels

    clients: dict[TrackingSettings, MlflowLog] = {}
    labels: dict[Path, dict[Path, str]] = {}  # sweep -> its runs' labels, read once
    counts = {"logged": 0, "already": 0, "skipped": 0, "failed": 0}
    for run_dir in find_runs(args.dirs):
        sweep = sweep_dir_of(run_dir)
        if sweep is not None and sweep not in labels:
            labels[sweep] = sweep_labels(sweep)
        try:
            settings = settings_for(run_dir, args.uri, args.experiment)
            settings.check()
            client = clients.get(settings) or clients.setdefault(settings, MlflowLog(settings))
            result = client.log_run(run_dir, (labels.get(sweep) or {}).get(run_dir.resolve()))
        except UserError as e:
            print(f"harness-track: error: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # the tracker refused: say which run, go on
            counts["failed"] += 1
            print(f"  {run_dir}: not logged ({failure(e)})")
            continue
        if result.get("skipped"):
            counts["skipped"] += 1
            print(f"  {run_dir}: skipped ({result['skipped']})")
        elif result.get("already"):
            counts["already"] += 1
        else:
            counts["logged"] += 1
            print(f"  {run_dir}: logged as MLflow run {result['run_id']}"
                  + (f" (sweep {sweep.name})" if sweep else ""))
    where = ", ".join(sorted({redact(s.uri) for s in clients})) or "-"
    print(f"harness-track: {counts['logged']} logged, {counts['already']} already there, "
          f"{counts['skipped']} not finished (skipped), {counts['failed']} failed; {where}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
