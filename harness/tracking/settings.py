"""The tracking settings (conf/tracking/), a run's config hash, the sweep a run folder belongs
to, and how a tracker's failure is said (redacted, one line)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

BACKENDS = ("none", "mlflow")
TRACKING_FILE = "tracking.json"  # in the run folder: where it was logged, or why not
# Where and how a run was executed, not what it is: left out of the config hash, so the
# same run from another folder, with other progress bars or with tracking on, is one run.
NOT_HASHED = ("results_dir", "cache_dir", "progress", "torch_threads", "hydra", "tracking",
              "prediction_cache", "memory")


@dataclass(frozen=True)
class TrackingSettings:
    backend: str = "none"  # none | mlflow
    uri: str | None = None  # null: sqlite:///<results_dir>/mlflow/mlflow.db (no server)
    experiment: str = "adaptbench"  # the MLflow experiment the runs go to
    artifacts: bool = True  # predictions.jsonl, metrics.json, config.yaml (and the report)
    retries: int = 2  # HTTP retries per request before a write counts as failed
    timeout_s: int = 10  # seconds per HTTP request

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"tracking.backend: unknown '{self.backend}'; choose one of: "
                              f"{', '.join(BACKENDS)}")
        if self.uri and re.match(r"\w+://[^/@\s]+@", str(self.uri)):
            raise ConfigError("tracking.uri: no credentials in the URI (it is written to the "
                              "run's config.yaml); export MLFLOW_TRACKING_USERNAME and "
                              "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")
        if self.retries < 0 or self.timeout_s < 1:
            raise ConfigError("tracking.retries must be >= 0 and tracking.timeout_s >= 1")

    @classmethod
    def from_config(cls, block: dict[str, Any] | None, results_dir: str | Path = "results"
                    ) -> TrackingSettings:
        """The `tracking` block of a run's config; the default local store is made an
        absolute sqlite URI under results_dir."""
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"tracking: unknown key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(known))}")
        settings = cls(**block)
        if settings.backend != "none" and not settings.uri:
            db = Path(results_dir).resolve() / "mlflow" / "mlflow.db"
            settings = cls(**{**block, "uri": f"sqlite:///{db}"})
        return settings

    def check(self) -> None:
        """Fail at once when the backend's package is missing (not after the run)."""
        if self.backend == "mlflow":
            try:
                import mlflow  # noqa: F401
            except ImportError:
                raise ConfigError("tracking=mlflow needs the mlflow package: "
                                  "pip install 'adaptbench[tracking]'") from None


def redact(text: str) -> str:
    """A URI or message with any user:password@ part of a URI masked."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", str(text))


def failure(e: BaseException) -> str:
    """'ErrorType: its first line', with credentials in any URI masked: how a tracker's
    refusal is said, in one line."""
    text = str(e).strip()
    return f"{type(e).__name__}: {redact(text.splitlines()[0] if text else '')}"


def config_hash(config: dict[str, Any]) -> str:
    """The identity of a run in a tracker: its resolved config without NOT_HASHED keys."""
    kept = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:20]


def sweep_dir_of(run_dir: Path) -> Path | None:
    """The sweep folder a run folder belongs to (Hydra's multirun), or None."""
    parent = run_dir.parent
    return parent if (parent / "multirun.yaml").is_file() or (parent / "sweep.json").is_file() \
        else None
