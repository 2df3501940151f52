"""Logging one run folder to the tracker without ever failing the run, and reading back what
was logged (the run folder's tracking.json). The MLflow client is imported only when a run
is logged, so a run without tracking never loads it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.run_files import read_json, write_json
from harness.tracking.settings import (
    TRACKING_FILE,
    TrackingSettings,
    failure,
    redact,
    sweep_dir_of,
)

log = logging.getLogger("harness.tracking")


def track_run(settings: TrackingSettings, run_dir: Path) -> dict[str, Any] | None:
    """Log one finished run folder (complete or failed) to the tracker. Never raises: a
    failure is said once, in one line, and written to the run's tracking.json."""
    if settings.backend == "none":
        return None
    where = redact(settings.uri)
    try:
        from harness.tracking.mlflow_log import MlflowLog
        result = MlflowLog(settings).log_run(run_dir)
    except Exception as e:  # the tracker's problem is never the run's
        result = {"logged": False, "error": failure(e)[:500]}
        log.warning("tracking: %s was not logged to MLflow at %s (%s). The run folder is "
                    "unaffected; log it later with: harness-track %s", run_dir.name, where,
                    result["error"], sweep_dir_of(run_dir) or run_dir)
    record = {"backend": settings.backend, "uri": where, "experiment": settings.experiment,
              **result}
    try:
        write_json(run_dir / TRACKING_FILE, record)
    except OSError as e:
        log.warning("tracking: cannot write %s (%s)", run_dir / TRACKING_FILE, e)
    return record


def read_tracking(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKING_FILE
    try:
        return read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
