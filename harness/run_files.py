"""Run directories, written atomically: a run is complete only when metrics.json says so.

Layout of one run directory:
  config.yaml          the resolved config
  predictions.jsonl    one line per test example: output, gold, scores, usage, citations
  metrics.json         status ("running" | "complete" | "failed"), metrics, costs, hashes
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STATUS_RUNNING, STATUS_COMPLETE, STATUS_FAILED = "running", "complete", "failed"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_status(run_dir: str | Path) -> str | None:
    """'complete', 'failed', 'running' (or killed mid-run), or None if not a run dir."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return read_json(path).get("status")
    except (json.JSONDecodeError, OSError):
        return None


def is_complete(run_dir: str | Path) -> bool:
    return run_status(run_dir) == STATUS_COMPLETE and (Path(run_dir) / "predictions.jsonl").is_file()


def find_runs(paths: list[Path]) -> list[Path]:
    """Every directory under `paths` that holds a metrics.json."""
    found = set()
    for p in paths:
        if (p / "metrics.json").is_file():
            found.add(p)
        found.update(m.parent for m in p.rglob("metrics.json"))
    return sorted(found)
