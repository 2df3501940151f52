"""Runs where teams keep them: an experiment tracker (MLflow), fed from the run folders.

The run folder stays the record; the tracker gets a copy. `tracking=mlflow` logs each run
when it ends (as an MLflow run inside one MLflow run for its sweep), `harness-track DIR`
logs run folders afterwards, and `harness-report` adds the report to the sweep's MLflow
run. The key of a run in the tracker is its config hash (`config_hash`), so logging a run
again, or a rerun of the same config, updates one MLflow run instead of adding another.
A tracker that is down or refuses a write never fails a run: the run folder is complete,
the run says once why tracking failed, and `harness-track` logs it later.

    settings.py      tracking.* settings, the config hash
    track.py         logging one run folder when it ends; its tracking.json
    mlflow_log.py    what an MLflow run holds, and logging it through the mlflow client
    cli.py           harness-track
"""

from harness.tracking.settings import (
    TRACKING_FILE,
    TrackingSettings,
    config_hash,
    redact,
    sweep_dir_of,
)
from harness.tracking.track import track_run

__all__ = ["TRACKING_FILE", "TrackingSettings", "config_hash", "redact", "sweep_dir_of",
           "track_run"]
